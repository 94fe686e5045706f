#!/usr/bin/env bash
# Checks `make install`: into a temporary DESTDIR with PREFIX=/usr, from the debug build (no release build needed),
# every file lands where it belongs, the completions load in bash and know every subcommand, the man page names
# every subcommand and option the command line declares, and the installed unit runs the installed binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
make --no-print-directory install INSTALL_BUILD=debug PREFIX=/usr DESTDIR="$root" >"$root.log" 2>&1 \
    || { cat "$root.log" >&2; echo "check-install: make install failed" >&2; exit 1; }
rm -f "$root.log"
fail() { echo "check-install: $*" >&2; exit 1; }
for file in usr/bin/routerd usr/share/man/man1/routerd.1 usr/share/bash-completion/completions/routerd \
    usr/share/zsh/site-functions/_routerd usr/share/fish/vendor_completions.d/routerd.fish \
    usr/lib/systemd/system/routerd.service usr/lib/sysusers.d/routerd.conf etc/logrotate.d/routerd \
    usr/share/doc/routerd/README.md; do
    [ -s "$root/$file" ] || fail "make install did not install /$file"
done
[ -x "$root/usr/bin/routerd" ] || fail "/usr/bin/routerd is not executable"
"$root/usr/bin/routerd" --version >/dev/null || fail "the installed binary does not run"
grep -q '^ExecStart=/usr/bin/routerd ' "$root/usr/lib/systemd/system/routerd.service" \
    || fail "the installed unit does not run /usr/bin/routerd"
grep -q '/usr/local/' "$root/usr/lib/systemd/system/routerd.service" && fail "the installed unit still names /usr/local"
subcommands=$("$root/usr/bin/routerd" --experimental-dump-help | python3 -c '
import json, sys
tool = json.load(sys.stdin)["command"]
print(" ".join(c["commandName"] for c in tool.get("subcommands", [])))')
[ -n "$subcommands" ] || fail "routerd --experimental-dump-help lists no subcommands"
man="$root/usr/share/man/man1/routerd.1"
grep -q '^\.Dt ROUTERD 1' "$man" || fail "routerd.1 is not a man page of section 1"
for name in $subcommands; do
    grep -q "$name" "$man" || fail "routerd.1 does not document 'routerd $name'"
    grep -q "$name" "$root/usr/share/zsh/site-functions/_routerd" || fail "the zsh completion lacks '$name'"
    grep -q "$name" "$root/usr/share/fish/vendor_completions.d/routerd.fish" || fail "the fish completion lacks '$name'"
done
# Every long option of every subcommand, as the man page's `.It Fl -name` items.
options=$("$root/usr/bin/routerd" --experimental-dump-help | python3 -c '
import json, sys
def walk(command):
    for argument in command.get("arguments", []):
        for name in argument.get("names", []):
            if name["kind"] == "long" and name["name"] not in ("help", "version", "experimental-dump-help"):
                print(name["name"])
    for sub in command.get("subcommands", []):
        walk(sub)
walk(json.load(sys.stdin)["command"])' | sort -u)
[ -n "$options" ] || fail "routerd --experimental-dump-help lists no options"
for option in $options; do
    grep -qE -- "^\.It Fl (. , )?-$option( |$)" "$man" || fail "routerd.1 does not document --$option"
done
# bash: load the completion as bash-completion would and ask it what follows `routerd `.
words=$(bash -c '
    source "$1"
    COMP_WORDS=(routerd ""); COMP_CWORD=1; COMP_LINE="routerd "; COMP_POINT=${#COMP_LINE}
    complete -p routerd >/dev/null
    fn=$(complete -p routerd | sed -E "s/.*-F ([^ ]+).*/\1/")
    "$fn" routerd "" routerd
    printf "%s\n" "${COMPREPLY[@]}"' _ "$root/usr/share/bash-completion/completions/routerd")
for name in $subcommands; do
    grep -qx "$name" <<<"$words" || fail "bash completion of 'routerd ' does not offer '$name' (offers: $words)"
done
echo "check-install: make install PREFIX=/usr DESTDIR=... installed every file; completions and man page cover: $subcommands"
