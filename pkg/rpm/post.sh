# %post: the certificate directory (root writes, the service's group reads),
# made once so that an administrator's later changes are kept; then
# %systemd_post (enable or not according to the presets).
if [ ! -d /etc/openssl-reload/tls ]; then
    install -d -m 0755 -o root -g root /etc/openssl-reload
    install -d -m 0750 -o root -g openssl-reload /etc/openssl-reload/tls
fi
if [ "$1" -eq 1 ] && [ -x /usr/bin/systemctl ]; then
    systemctl --no-reload preset openssl-reload.service >/dev/null 2>&1 || :
fi
exit 0
