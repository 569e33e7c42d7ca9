# scripts/lab-lock.sh -- sourced by the lab scripts (lab.sh, libreswan.sh). Engineers sharing
# one machine take the lab in turns under `flock /tmp/roam-lab.lock CMD`; a daemon the lab
# starts (charon, iperf3 -D, pluto, roam serve) would inherit that lock's descriptor and hold
# the lock long after CMD ended. So the lab scripts close it before they start anything.
for _fd in /proc/$$/fd/*; do
  _fd=${_fd##*/}
  if [ "$(readlink "/proc/$$/fd/$_fd" 2>/dev/null)" = "${ROAM_LAB_LOCK:-/tmp/roam-lab.lock}" ]; then
    eval "exec $_fd>&-"
  fi
done
unset _fd
