"""Deterministic OCI image pieces, made inside the engine with the base image's python3.

  oci.py layer SRC PREFIX EPOCH OUT   SRC's tree as one gzip layer under PREFIX ("" = /):
                                      OUT/layer.tar.gz and OUT/layer.json {digest, size, diff_id};
                                      EPOCH "keep": every file keeps its own mtime (whole seconds)
  oci.py image SPEC OUT [TAR]         OCI image layout in OUT from SPEC (JSON: layers as dirs
                                      written by `layer`, or as src + prefix to write here;
                                      config, epoch, history descriptions); OUT/digest; with
                                      TAR, the layout as one tar too (what `tarball` writes)
  oci.py tarball LAYOUT OUT           LAYOUT as one tar (for Container.Import / docker load)

Same inputs, same bytes: entries sorted, every mtime = EPOCH (or the file's own), owners numeric,
no user/group names, gzip header without name or time, JSON with sorted keys.
"""
import gzip
import io
import hashlib
import json
import os
import platform
import shutil
import stat
import sys
import tarfile


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class HashWriter:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def entries(src):
    """Every path under src in a stable depth-first order (parents before children)."""
    out = []

    def rec(rel):
        full = os.path.join(src, rel) if rel else src
        for name in sorted(os.listdir(full)):
            r = f"{rel}/{name}" if rel else name
            p = os.path.join(src, r)
            out.append((p, r))
            if os.path.isdir(p) and not os.path.islink(p):
                rec(r)

    rec("")
    return out


def layer(src, prefix, epoch, out, git_modes=False):
    """git_modes: src is a checkout, whose permission bits beyond the executable bit come from
    the umask of whoever checked it out (git records 644 or 755 only): write what git records,
    so the same commit gives the same layer from any checkout."""
    keep = epoch == "keep"
    epoch = 0 if keep else int(epoch)
    prefix = prefix.strip("/")
    os.makedirs(out, exist_ok=True)
    blob = os.path.join(out, "layer.tar.gz")
    with open(blob, "wb") as raw:
        comp = HashWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=comp, mtime=0, compresslevel=6) as gz:
            diff = HashWriter(gz)
            with tarfile.open(fileobj=diff, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                def norm(ti):
                    # whole seconds either way: a float mtime would add a pax header
                    ti.mtime = int(ti.mtime) if keep else epoch
                    ti.uname = ti.gname = ""
                    ti.pax_headers = {}
                    return ti
                if prefix:  # the prefix's parents and the prefix itself, root-owned 0755
                    parts = prefix.split("/")
                    for i in range(1, len(parts) + 1):
                        ti = tarfile.TarInfo("/".join(parts[:i]))
                        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(norm(ti))
                for path, rel in entries(src):
                    st = os.lstat(path)
                    if stat.S_ISSOCK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                        continue
                    arc = f"{prefix}/{rel}" if prefix else rel
                    ti = norm(tar.gettarinfo(path, arcname=arc))
                    if git_modes and ti.isdir():
                        ti.mode = 0o755
                    elif git_modes and ti.isreg():
                        ti.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                    if ti.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(ti, f)
                    else:
                        tar.addfile(ti)
    info = {"digest": "sha256:" + comp.h.hexdigest(), "size": comp.n,
            "diff_id": "sha256:" + diff.h.hexdigest()}
    with open(os.path.join(out, "layer.json"), "w") as f:
        json.dump(info, f, sort_keys=True)


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def put_blob(layout, data=None, path=None):
    d = "sha256:" + hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    dst = os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])
    if data is not None:
        with open(dst, "wb") as f:
            f.write(data)
        return d, len(data)
    shutil.copyfile(path, dst)
    return d, os.path.getsize(dst)


def image(spec_path, out, tar=None):
    with open(spec_path) as f:
        spec = json.load(f)
    created = spec["created"]
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    # the image's platform: the spec's (another than this exec's), else this exec's
    plat = spec.get("platform") or {"architecture": arch, "os": "linux"}
    layers, diff_ids, history = [], [], []
    for item in spec["layers"]:
        if "src" in item:  # written here: saves an exec (a container start) per build
            item["dir"] = os.path.join(out, ".layer-" + str(len(layers)))
            layer(item["src"], item["prefix"], spec["epoch"], item["dir"], git_modes=True)
        with open(os.path.join(item["dir"], "layer.json")) as f:
            meta = json.load(f)
        d, size = put_blob(out, path=os.path.join(item["dir"], "layer.tar.gz"))
        assert d == meta["digest"], (d, meta)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": d, "size": size})
        diff_ids.append(meta["diff_id"])
        history.append({"created": created, "created_by": item["created_by"]})
    config = {"created": created,
              "config": spec["config"], "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": history}
    config.update(plat)
    cd, cs = put_blob(out, data=canon(config))
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cd, "size": cs},
                "layers": layers}
    if spec.get("annotations"):
        manifest["annotations"] = spec["annotations"]
    md, ms = put_blob(out, data=canon(manifest))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": md, "size": ms,
                            "platform": plat}]}
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canon(index))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canon({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(out, "digest"), "w") as f:
        f.write(md + "\n")
    for item in spec["layers"]:
        if "src" in item:
            shutil.rmtree(item["dir"])
    if tar:  # the container view for Container.Import, without a second exec (a container start)
        tarball(out, tar)


def tarball(layout, out):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    # manifest.json too (docker-archive), so `docker load` of older dockers reads it.
    with open(os.path.join(layout, "index.json")) as f:
        md = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(layout, "blobs", "sha256", md.split(":", 1)[1])) as f:
        m = json.load(f)
    docker = canon([{"Config": "blobs/sha256/" + m["config"]["digest"].split(":", 1)[1],
                     "RepoTags": None,
                     "Layers": ["blobs/sha256/" + x["digest"].split(":", 1)[1] for x in m["layers"]]}])
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("manifest.json")
        ti.size, ti.mode = len(docker), 0o644
        tar.addfile(ti, io.BytesIO(docker))
        for path, rel in entries(layout):
            if rel == "digest":
                continue
            ti = tar.gettarinfo(path, arcname=rel)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
            if ti.isreg():
                with open(path, "rb") as f:
                    tar.addfile(ti, f)
            else:
                tar.addfile(ti)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "layer":
        layer(*args)
    elif cmd == "image":
        image(*args)
    elif cmd == "tarball":
        tarball(*args)
    else:
        sys.exit(f"oci.py: unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv)
