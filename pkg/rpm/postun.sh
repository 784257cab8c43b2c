# %postun: %systemd_postun_with_restart; on erase, remove the certificate
# directory if it is empty (its contents are the administrator's).
if [ -x /usr/bin/systemctl ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart openssl-reload.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    rmdir /etc/openssl-reload/tls /etc/openssl-reload >/dev/null 2>&1 || :
fi
exit 0
