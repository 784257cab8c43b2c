# %preun: %systemd_preun, on erase (not upgrade) only.
if [ "$1" -eq 0 ] && [ -x /usr/bin/systemctl ]; then
    systemctl --no-reload disable --now openssl-reload.service >/dev/null 2>&1 || :
fi
exit 0
