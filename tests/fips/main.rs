//! FIPS suite: see ci/fips.sh.
