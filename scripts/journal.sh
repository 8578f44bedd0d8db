#!/usr/bin/env bash
# webapp-journal [NAME]: what runs now on this instance, what ran before, and how each deployment
# ended, from the journal the hooks append to (lib.sh `journal`: STATE_DIR/NAME/journal).
# Every hook installs this script as STATE_DIR/webapp-journal; the bootstrap links it as
# /usr/local/bin/webapp-journal. STATE_DIR: the environment, else this script's directory when it
# is the installed copy, else /var/lib/webapp.
set -euo pipefail

main() {
  local dir=${STATE_DIR:-} app found=
  if [ -z "$dir" ]; then
    dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
    [ "$(basename "${BASH_SOURCE[0]}")" = webapp-journal ] || dir=/var/lib/webapp
  fi
  for app in "$dir"/*/; do
    app=$(basename "$app")
    [ -z "${1:-}" ] || [ "$app" = "$1" ] || continue
    [ -f "$dir/$app/journal" ] || continue
    found=1
    show "$app" "$dir/$app/journal"
  done
  [ -n "$found" ] || { echo "webapp-journal: no journal under $dir${1:+ for $1} (no deployment has run the hooks here yet)" >&2; exit 1; }
}

# show NAME FILE: the summary of one app's journal (tab-separated: time, deployment, revision,
# image, hook, event, detail).
show() {
  echo "== $1 ($2)"
  awk -F'\t' '
    function serving(rev, img, t) { if (rev != now) { before = now; before_img = now_img; before_t = now_t }
      now = rev; now_img = img; now_t = t }
    !($2 in seen) { seen[$2] = 1; order[++n] = $2; began[$2] = $1; rev[$2] = $3; img[$2] = $4 }
    $6 == "verified" { verified[$2] = $7 }
    $6 == "switch" { split($7, w, " "); serving(w[3], $4, $1); sw[$2] = $7 }
    $6 == "rollback" { split($7, w, " "); sub(/:$/, "", w[3]); rb[$2] = $7; serving(w[3], img_of[w[3]], $1) }
    $6 == "reuse" { reuse[$2] = $7 }
    $6 == "start" { img_of[$3] = $4; hooks[$2] = hooks[$2] " " $5 }
    $6 == "end" { last[$2] = $5; ended[$2] = $1; res[$2] = $7 }
    END {
      printf "now:    revision %s  %s  (serving since %s)\n", now == "" ? "-" : now, now_img, now_t
      if (before == "") print "before: nothing (one version so far)"
      else printf "before: revision %s  %s  (until %s)\n", before, before_img, before_t
      print "deployments, oldest first:"
      for (i = 1; i <= n; i++) {
        d = order[i]
        if (res[d] == "ok" && last[d] == "ValidateService") how = "succeeded"
        else if (res[d] == "ok") how = "ended after " last[d] " (no later hook ran)"
        else how = "FAILED in " last[d] ": " substr(res[d], index(res[d], ": ") + 2)
        printf "  %s  %s  revision %s  %s\n", began[d], d, rev[d], how
        printf "      image %s; %s\n", img[d], verified[d] == "" ? "verification: not recorded" : "verification: " verified[d]
        if (reuse[d] != "") printf "      %s\n", reuse[d]
        if (sw[d] != "") printf "      switch: %s\n", sw[d]
        if (rb[d] != "") printf "      switched back: %s\n", rb[d]
        printf "      hooks:%s, last ended %s\n", hooks[d], ended[d]
      }
    }' "$2"
}

main "$@"
