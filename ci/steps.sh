# shellcheck shell=bash
# Numbered steps with their timings, and failures, for the scripts that
# build and exercise packages (ci/package.sh, ci/nginx-package.sh). Sourced:
#
#   . "$root/ci/steps.sh"
#   step "what comes next"     # prints "==> [N] what comes next  (at Ts)"
#   fail "what went wrong"     # "FAIL: ..." and exit 1
#   ok "what was checked"
#   step_timings               # a line per step finished: seconds and name

t0=$SECONDS
step_no=0
step_t=$SECONDS
timings=()
step() {
    if ((step_no > 0)); then
        timings+=("$(printf '%4ss  %s' $((SECONDS - step_t)) "$step_name")")
    fi
    step_no=$((step_no + 1))
    step_name="$*"
    step_t=$SECONDS
    printf '\n==> [%d] %s  (at %ds)\n' "$step_no" "$*" $((SECONDS - t0))
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "  ok: $*"; }
step_timings() {
    timings+=("$(printf '%4ss  %s' $((SECONDS - step_t)) "$step_name")")
    printf '%s\n' "${timings[@]}"
}
