# Sourced by CI and test scripts: `step WHAT` prints "==> [N s] WHAT", N the seconds since
# NAMEDMUTEX_STEPS_T0 (set by the first script that sources this, and passed on to the ones
# it runs), so that a log shows where the time goes.
: "${NAMEDMUTEX_STEPS_T0:=$(date +%s)}"
export NAMEDMUTEX_STEPS_T0
step() { echo "==> [$(($(date +%s) - NAMEDMUTEX_STEPS_T0)) s] $*"; }
