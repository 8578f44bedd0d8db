"""Slim a Debian python image's root filesystem (mounted at argv[1]) for the runtime image.

The image's own Python says where it lives (sysconfig, site): /usr/lib/python3.X and Debian's
dist-packages in a Debian-built image, /usr/local/lib/python3.X in the official python image.

Removes the files of the packages the service never uses at run time (package manager, pip,
perl, shells other than dash, most coreutils...), documentation, locales and the stdlib's test
and GUI modules. Only regular files and symlinks are removed (directories stay: they are shared
between packages). Runs with the image's own python3, which is kept. The list of what goes is
the contract of the runtime image; tests pull the result and run gunicorn in it.

Every directory that stays, and dpkg's status file, gets the base image's mtime back: the layer
keeps the base's file times, so its bytes depend on the base image only, never on the commit.
"""
import os
import shutil
import site
import sys
import sysconfig

# Debian packages whose files go (dpkg's database goes too, but for a status file listing the
# packages that stay: what SBOM generators read).
DROP_PACKAGES = """
apt libapt-pkg7.0 sqv debian-archive-keyring debconf libdebconfclient0 dpkg perl-base
python3-pip python3-pip-whl python3-setuptools-whl python3-wheel python3-packaging python3-venv
bash bsdutils diffutils findutils grep gzip hostname init-system-helpers mawk
sed tar util-linux mount login login.defs passwd ncurses-bin sysvinit-utils debianutils
readline-common libreadline8t64 libpam-modules libpam-modules-bin libpam-runtime libpam0g
libaudit-common libaudit1 libcap-ng0 libsemanage-common libsemanage2 libsepol2 libsmartcols1
libmount1 libblkid1 libsystemd0 libudev1 libxxhash0 liblz4-1 libseccomp2 libdb5.3t64
liblastlog2-2 libgmp10 libhogweed6t64 libnettle8t64 libcrypt1 openssl openssl-provider-legacy
libc-bin
""".split()
# their names in bookworm (Python 3.11), before the t64 renames and sqv
DROP_PACKAGES += "libapt-pkg6.0 gpgv libreadline8 libdb5.3 libhogweed6 libnettle8".split()
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"  # python3.13
DROP_PACKAGES.append(f"{PYVER}-venv")

# Kept from dropped packages: `id` (tests check the user), `env`, `cat`, `ls`, `sleep`.
KEEP_FILES = {"/usr/bin/id", "/usr/bin/env", "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/sleep",
              "/usr/bin/true", "/usr/bin/false"}
# coreutils is dropped except KEEP_FILES (and their libraries, in kept packages).
DROP_PACKAGES.append("coreutils")

DROP_TREES = [
    "/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale", "/usr/share/lintian",
    "/usr/share/linda", "/usr/share/bash-completion", "/usr/share/zsh", "/usr/share/python-wheels",
    "/usr/share/perl5", "/usr/share/debconf", "/usr/share/pam", "/usr/share/pam-configs",
    "/usr/share/gcc", "/usr/share/gdb", "/usr/share/keyrings", "/usr/share/menu",
    "/usr/lib/locale", "/usr/lib/apt", "/usr/lib/dpkg", "/usr/lib/python3/dist-packages/pip",
    "/var/lib/apt", "/var/lib/dpkg", "/var/cache/apt", "/var/cache/debconf", "/var/cache/ldconfig",
    "/var/log", "/etc/apt", "/etc/dpkg",
]
# The image's Python says where its standard library and site-packages are (read before the
# chroot, by the same interpreter the root filesystem holds).
PYLIB = sysconfig.get_paths()["stdlib"]
DYNLOAD = os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload")
DROP_TREES += [f"{PYLIB}/{d}" for d in ("test", "idlelib", "tkinter", "turtledemo", "ensurepip",
                                         "pydoc_data", "lib2to3", "venv", "__phello__")]
# pip goes (nothing installs at run time) wherever it is installed, Debian's package or the
# official image's /usr/local/lib/python3.X/site-packages/pip, with its commands.
SITE_DIRS = sorted(set(site.getsitepackages()) | {sysconfig.get_paths()["purelib"]})
PIP_COMMANDS = ("pip", "pip3", f"pip{PYVER.removeprefix('python')}")
SCRIPT_DIRS = sorted({sysconfig.get_paths()["scripts"], "/usr/local/bin", "/usr/bin"})


def canonical(path):
    """path with its directory's symlinks resolved: /bin/cat is /usr/bin/cat in a merged /usr
    (bookworm's dpkg lists still name /bin/cat)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def pip_paths():
    out = []
    for d in SITE_DIRS:
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in os.listdir(d) if n == "pip" or
                    (n.startswith("pip-") and n.endswith(".dist-info"))]
    return out + [os.path.join(d, n) for d in SCRIPT_DIRS for n in PIP_COMMANDS]
DROP_GLOBS_IN_DYNLOAD = ("_test", "_ctypes_test", "_xxtestfuzz", "xxlimited", "xxsubtype")


def lists(pkg):
    info = "/var/lib/dpkg/info"
    for name in (f"{pkg}.list", f"{pkg}:amd64.list", f"{pkg}:arm64.list"):
        p = os.path.join(info, name)
        if os.path.exists(p):
            with open(p) as f:
                return [line.rstrip("\n") for line in f if line.strip()]
    return []


def kept_status():
    """/var/lib/dpkg/status without the stanzas of DROP_PACKAGES."""
    with open("/var/lib/dpkg/status") as f:
        stanzas = f.read().strip("\n").split("\n\n")
    keep = [st for st in stanzas if st.split("\n", 1)[0].removeprefix("Package: ") not in DROP_PACKAGES]
    return "\n\n".join(keep) + "\n"


def dir_times():
    """The (atime, mtime) in ns of every directory, and of dpkg's status file, before any change."""
    times = {}
    for root, dirs, _ in os.walk("/", topdown=True):
        dirs[:] = [d for d in dirs if not (root == "/" and d in ("proc", "sys", "dev"))]
        st = os.lstat(root)
        times[root] = (st.st_atime_ns, st.st_mtime_ns)
    if os.path.exists("/var/lib/dpkg/status"):
        st = os.lstat("/var/lib/dpkg/status")
        times["/var/lib/dpkg/status"] = (st.st_atime_ns, st.st_mtime_ns)
    return times


def restore_times(times):
    """Removing an entry touches its directory: what is left gets the base image's times back."""
    for path, ns in times.items():
        if os.path.lexists(path) and not os.path.islink(path):
            os.utime(path, ns=ns, follow_symlinks=False)


def main(argv):
    # Work on the root filesystem mounted at argv[1] (chroot into it: absolute symlinks and
    # dpkg's lists then mean what they say), not on the running container's own files.
    os.chroot(argv[1])
    os.chdir("/")
    times = dir_times()
    doomed = []
    for pkg in DROP_PACKAGES:
        for path in lists(pkg):
            if canonical(path) in KEEP_FILES or path.startswith("/usr/share/doc/"):
                continue
            # a link to a directory is shared structure (bookworm's packages list /lib, the
            # merged /usr's link), never a package's own file
            if os.path.islink(path) and os.path.isdir(path):
                continue
            doomed.append(path)
    for path in doomed:
        # merged /usr: lists name /bin/x and /usr/bin/x; lexists follows the /bin symlink
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    kept = kept_status()
    for tree in DROP_TREES + pip_paths():
        if os.path.isdir(tree) and not os.path.islink(tree):
            shutil.rmtree(tree)
        elif os.path.lexists(tree):
            os.unlink(tree)
    # what stays installed, for SBOM generators (syft reads /var/lib/dpkg/status): dpkg's
    # database without the dropped packages' stanzas (distroless does the same)
    os.makedirs("/var/lib/dpkg", exist_ok=True)
    with open("/var/lib/dpkg/status", "w") as f:
        f.write(kept)
    for name in os.listdir(DYNLOAD):
        if name.startswith(DROP_GLOBS_IN_DYNLOAD):
            os.unlink(os.path.join(DYNLOAD, name))
    for root, dirs, _ in os.walk("/", topdown=True):
        dirs[:] = [d for d in dirs if not (root == "/" and d in ("proc", "sys", "dev"))]
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(root, "__pycache__"))
            dirs.remove("__pycache__")
    # dangling symlinks left by removed targets (e.g. /etc/alternatives)
    for root, dirs, files in os.walk("/", topdown=True):
        dirs[:] = [d for d in dirs if not (root == "/" and d in ("proc", "sys", "dev"))]
        for name in files + dirs:
            p = os.path.join(root, name)
            if os.path.islink(p) and not os.path.exists(p):
                os.unlink(p)
    restore_times(times)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
