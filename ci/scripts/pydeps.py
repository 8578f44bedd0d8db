"""Print the requirements a pyproject.toml declares, one per line (ci/ runs
this in the base image, with its own python3: tomllib is in the stdlib from
3.11 on).

    pydeps.py PYPROJECT [--dev [NAME ...]] [--build]

Without --dev: the runtime dependencies, [project].dependencies (PEP 621).
--dev adds the lint/test tools: the named extras ([project.optional-
dependencies]) or dependency groups ([dependency-groups], PEP 735, with
{include-group = ...} resolved); no names means every extra and every group.
--build adds [build-system].requires.
"""
import sys
import tomllib


def group(groups, name, seen=()):
    out = []
    for item in groups[name]:
        if isinstance(item, dict):
            inc = item["include-group"]
            if inc in seen:
                sys.exit(f"pydeps.py: dependency group {name!r} includes itself through {inc!r}")
            out += group(groups, inc, seen + (name,))
        else:
            out.append(item)
    return out


def main(argv):
    path, args = argv[1], argv[2:]
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    project = doc.get("project", {})
    reqs = list(project.get("dependencies", []))
    if "--build" in args:
        reqs += doc.get("build-system", {}).get("requires", [])
    if "--dev" in args:
        names = [a for a in args[args.index("--dev") + 1:] if not a.startswith("--")]
        extras = project.get("optional-dependencies", {})
        groups = doc.get("dependency-groups", {})
        for name in names or sorted(set(extras) | set(groups)):
            if name not in extras and name not in groups:
                sys.exit(f"pydeps.py: {path} has no extra or dependency group {name!r} "
                         f"(extras: {sorted(extras)}, groups: {sorted(groups)})")
            reqs += extras.get(name, [])
            if name in groups:
                reqs += group(groups, name)
    for r in dict.fromkeys(reqs):  # in order, once each
        print(r)


if __name__ == "__main__":
    main(sys.argv)
