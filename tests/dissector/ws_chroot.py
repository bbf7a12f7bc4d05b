#!/usr/bin/env python3
"""Builds the plugin against another Debian's Wireshark and runs the whole dissector suite there.

  ws_chroot.py SUITE CHROOTS      SUITE: trixie (Wireshark 4.4) or sid (4.6); CHROOTS: the folder (inside a
                                  build folder) that holds one chroot per suite, kept for the next run

The chroot is made once with mmdebstrap from Debian's archive (about 100 s and 180 MB each), then reused;
mmdebstrap runs in a private mount namespace too, so a run killed while it installs leaves no mounts behind:
each run copies the source tree into it, builds libkeyring and spark.so there (an ASan+UBSan build when this
build is one) and runs `meson test --suite dissector` inside, with /proc mounted and /dev bound in a private
mount namespace (the mounts end with the run). Exit 77 (skip) only when the archive cannot be reached, or
when not run as root (mmdebstrap and chroot need it)."""
import fcntl
import os
import shutil
import subprocess
import sys
import urllib.request

SKIP = 77
MIRROR = os.environ.get("SPARKWIRE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ["build-essential", "meson", "ninja-build", "pkg-config", "libssl-dev", "libglib2.0-dev",
            "libjson-c-dev", "libcoap3-dev", "libcmocka-dev", "libwireshark-dev", "wireshark-dev", "tshark",
            "python3", "util-linux", "openssl"]
# what the suite needs built: the installed targets (the plugin, and for meson-install the rest); the unit
# tests are not built, the suite does not run them
INSTALLED = "meson introspect %s --installed | python3 -c 'import json, sys; " \
            "[print(p[len(sys.argv[1]) + 1:]) for p in json.load(sys.stdin) if p.startswith(sys.argv[1] + \"/\")]' %s"
MARK = "sparkwire-packages"   # in the chroot's root: the package list it was made with
CREATE_TIMEOUT = 900        # mmdebstrap measured at about 100 s
RUN_TIMEOUT = 1200          # build and the dissector suite inside


def log(msg):
    print(msg, flush=True)


def archive_reachable(suite):
    url = "%s/dists/%s/InRelease" % (MIRROR, suite)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20) as r:
            return r.status == 200, url
    except Exception as e:          # any network failure means: not reachable
        return False, "%s (%s)" % (url, e)


def create(suite, root):
    ok, what = archive_reachable(suite)
    if not ok:
        log("SKIP: the Debian archive cannot be reached: %s" % what)
        sys.exit(SKIP)
    mm = shutil.which("mmdebstrap")
    if not mm:
        log("FAIL: mmdebstrap is not installed (apt-get install mmdebstrap, or make deps)")
        sys.exit(1)
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # its /proc, /sys and /dev mounts live in a namespace of their own and end with it, even when killed
    cmd = ["unshare", "--mount", "--propagation", "private", "--",
           mm, "--variant=apt", "--include=" + ",".join(PACKAGES)]
    if suite == "sid":              # unstable's Release file may be past its Valid-Until on a stale mirror
        cmd.append('--aptopt=Acquire::Check-Valid-Until "false"')
    cmd += [suite, tmp, MIRROR]
    log("making the %s chroot: %s" % (suite, " ".join(cmd)))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=CREATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        log("FAIL: mmdebstrap %s took longer than %d s" % (suite, CREATE_TIMEOUT))
        sys.exit(1)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        ok, what = archive_reachable(suite)
        if not ok:
            log("SKIP: the Debian archive cannot be reached: %s" % what)
            sys.exit(SKIP)
        log("FAIL: mmdebstrap %s exited %d:\n%s" % (suite, r.returncode, r.stderr[-3000:]))
        sys.exit(1)
    with open(os.path.join(tmp, MARK), "w") as f:
        f.write(" ".join(PACKAGES) + "\n")
    os.rename(tmp, root)


def current(root):
    """A chroot made by this script with the same package list (else it is made again)."""
    try:
        with open(os.path.join(root, MARK)) as f:
            return f.read().split() == PACKAGES
    except OSError:
        return False


def is_build_dir(path):
    return os.path.isdir(os.path.join(path, "meson-private")) or os.path.isdir(os.path.join(path, "meson-info"))


def copy_source(src, dst):
    """The source tree without its build folders and git data, world-readable (tshark runs as nobody)."""
    def ignore(folder, names):
        return [n for n in names if n == ".git" or is_build_dir(os.path.join(folder, n))
                or (os.path.abspath(folder) == os.path.abspath(src) and n.startswith("build"))]
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=ignore, symlinks=True)
    for folder, dirs, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for f in files:
            p = os.path.join(folder, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("trixie", "sid"):
        sys.exit("usage: ws_chroot.py trixie|sid CHROOTS")
    suite, base = sys.argv[1], os.path.abspath(sys.argv[2])
    src = os.environ.get("SPARKWIRE_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                  "..", "..")
    sanitized = os.environ.get("SPARKWIRE_SANITIZED") == "1"
    if os.geteuid() != 0:
        log("SKIP: the %s chroot needs root (mmdebstrap, mount, chroot); run the tests as root" % suite)
        return SKIP
    os.makedirs(base, exist_ok=True)
    root = os.path.join(base, suite)
    with open(os.path.join(base, suite + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # the normal and the ASan build may share the chroots
        if not current(root):
            shutil.rmtree(root, ignore_errors=True)
            create(suite, root)
        copy_source(src, os.path.join(root, "src"))
        build = "/build-asan" if sanitized else "/build"
        setup = "meson setup %s -Dfirmware=false -Dmonitor=false -Dplugin=enabled -Dtests=enabled " \
                "-Dplugin_other_wiresharks=false" % build
        test = "meson test -C %s --no-rebuild --suite dissector --print-errorlogs --num-processes 2" % build
        if sanitized:
            setup += " -Db_sanitize=address,undefined -Db_lundef=false"
            test = "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 " \
                   "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 " + test + " --timeout-multiplier 3"
        script = "set -e; cd /src; echo \"Wireshark $(pkg-config --modversion wireshark) in %s\"; " \
                 "[ -f %s/build.ninja ] || %s >/dev/null; ninja -C %s build.ninja >/dev/null; " \
                 "ninja -C %s -j 2 $(%s) tests/dissector/follow_conv; %s" \
                 % (suite, build, setup, build, build, INSTALLED % (build, build), test)
        inner = "mount -t proc proc '%s/proc' && mount --rbind /dev '%s/dev' && exec chroot '%s' /bin/sh -c \"$0\"" \
                % (root, root, root)
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", inner, script]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        try:
            r = subprocess.run(cmd, env=env, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            log("FAIL: the dissector suite in %s took longer than %d s" % (suite, RUN_TIMEOUT))
            return 1
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
