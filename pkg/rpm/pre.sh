# %pre: the service user and group (as sysusers.d/openssl-reload.conf would
# make them, for systems where rpm does not apply sysusers.d itself).
getent group openssl-reload >/dev/null || groupadd -r openssl-reload
getent passwd openssl-reload >/dev/null || \
    useradd -r -g openssl-reload -d / -s /sbin/nologin \
        -c "openssl-reload HTTPS server" openssl-reload
exit 0
