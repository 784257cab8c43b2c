//! Unit tests of the staple rules.

use super::*;

fn stapled(this_update: i64, next_update: Option<i64>) -> OcspInfo {
    OcspInfo {
        stapled: true,
        this_update_unix: Some(this_update),
        next_update_unix: next_update,
        ..OcspInfo::new(Path::new("cert.pem.ocsp"))
    }
}

#[test]
fn a_staple_without_next_update_leaves_service_seven_days_after_this_update() {
    let day = 86_400;
    let now = now();
    assert!(stapled(now - 6 * day, None).in_service());
    assert!(!stapled(now - 7 * day - 60, None).in_service());
    // A nextUpdate, however far after thisUpdate, is the responder's word.
    assert!(stapled(now - 30 * day, Some(now + day)).in_service());
    assert!(!stapled(now - day, Some(now - 60)).in_service());
}
