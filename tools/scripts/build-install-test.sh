#!/usr/bin/env bash
# Builds the collection tarball, installs it into an empty collections path and
# checks it from there, the way a user gets it from Galaxy:
#   1. `ansible-galaxy collection build`, then the tarball's file list: it holds
#      the collection only (an allow-list of top-level entries: no tools, tests,
#      molecule, Makefile, venvs, caches or results), and every git-tracked file
#      that galaxy.yml's build_ignore does not exclude;
#   2. `ansible-galaxy collection install --offline` into an empty directory;
#   3. with only that directory as the collections path (not the checkout's
#      .cache/collections link, and run from outside the checkout so its
#      ansible.cfg is not read): ansible-doc renders every module, connection,
#      filter and test plugin and every role entry point, each from the installed
#      copy; `ansible-playbook --syntax-check` resolves every playbook by name.
#   4. module_defaults groups (meta/runtime.yml action_groups) reach the modules.
#   --run-lab  then runs tproxy.envoy.site, .verify and .teardown from the
#              installed copy against the running lab (`tools/lab/lab.sh up` first), with an
#              inventory of its own written the way a user writes one (hosts.yml and
#              group_vars/all.yml in the temporary directory: the lab's hosts and addresses,
#              how to reach them, the lab's images), not the repository's inventories/.
#   --while-up CMD  with --run-lab: runs the shell command CMD after verify, while
#              the installed copy's topology is up (the bench smoke), before teardown.
# KEEP_TREE=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

run_lab=0
while_up=
while (($#)); do
  case "$1" in
    --run-lab) run_lab=1 ;;
    --while-up) [ $# -ge 2 ] || { echo "$0: --while-up needs a command" >&2; exit 2; }; while_up=$2; shift ;;
    *) echo "usage: $0 [--run-lab [--while-up CMD]]" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tproxy-build.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "${KEEP_TREE:-0}" = 1 ]; then echo "build-install: kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
step() { echo "== $* ($((SECONDS))s)"; }

read -r namespace name version < <(python3 -c '
import sys, yaml
m = yaml.safe_load(open("galaxy.yml"))
print(m["namespace"], m["name"], m["version"])')

# --- 1. build and inspect ---------------------------------------------------
step "ansible-galaxy collection build"
ansible-galaxy collection build --force --output-path "$work/dist" . >/dev/null
tarball="$work/dist/$namespace-$name-$version.tar.gz"
[ -f "$tarball" ] || { echo "build-install: no $tarball" >&2; exit 1; }
echo "built $tarball ($(du -h "$tarball" | cut -f1))"
tar -tzf "$tarball" | sed 's|^\./||; s|/$||' | sort -u >"$work/contents"
echo "$(wc -l <"$work/contents") entries"

step "tarball contents"
# What a collection is made of; anything else at the top is a tool or a leftover.
allowed='MANIFEST.json FILES.json README.md CHANGELOG.rst COPYING changelogs docs meta plugins roles playbooks inventories'
for wanted in MANIFEST.json FILES.json README.md CHANGELOG.rst COPYING changelogs/changelog.yaml docs/architecture.md \
              meta/runtime.yml meta/execution-environment.yml meta/ee-requirements.txt meta/ee-bindep.txt \
              plugins/modules plugins/connection roles/router roles/webserver roles/client \
              playbooks/site.yml playbooks/verify.yml playbooks/teardown.yml inventories/lab inventories/aws; do
  if grep -qx "$wanted" "$work/contents"; then ok "contains $wanted"; else fail "tarball lacks $wanted"; fi
done
cut -d/ -f1 "$work/contents" | sort -u | grep -vxF -f <(tr ' ' '\n' <<<"$allowed") >"$work/extra" || true
if [ -s "$work/extra" ]; then
  fail "tarball holds what is not the collection:"; sed 's/^/    /' "$work/extra" >&2
else
  ok "top-level entries are the collection's only ($(cut -d/ -f1 "$work/contents" | sort -u | tr '\n' ' '))"
fi
# Inside the collection's directories: nothing per-machine or generated.
unwanted='(^|/)(\.venv|\.cache|\.ansible|\.git|\.pytest_cache|__pycache__|\.molecule|\.benchmarks|tests)(/|$)|\.tar\.gz$|\.pyc$|^changelogs/\.plugin-cache\.yaml$'
if grep -E "$unwanted" "$work/contents" >"$work/unwanted"; then
  fail "tarball holds files users do not need:"; sed 's/^/    /' "$work/unwanted" | head -20 >&2
else
  ok "no tests, venvs, caches, results or archives"
fi
# Every file the project tracks ships, unless build_ignore excludes it on purpose.
python3 - "$work/contents" <<'PY' >"$work/missing"
import fnmatch, subprocess, sys, yaml
contents = set(open(sys.argv[1]).read().split('\n'))
ignore = yaml.safe_load(open('galaxy.yml')).get('build_ignore') or []
tracked = subprocess.run(['git', 'ls-files', '-z'], capture_output=True, check=True, text=True).stdout.split('\0')
for path in filter(None, tracked):
    if path == 'galaxy.yml':  # becomes MANIFEST.json
        continue
    if any(fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip('/') + '/') for pattern in ignore):
        continue
    if path not in contents:
        print(path)
PY
if [ -s "$work/missing" ]; then
  fail "tracked files missing from the tarball:"; sed 's/^/    /' "$work/missing" >&2
else
  ok "every tracked file outside build_ignore is in the tarball"
fi

# --- 2. install into an empty collections path -------------------------------
# From here on only the new directory may be visible: not the checkout's
# ansible.cfg, nor its .cache/collections link (through which galaxy would even
# find tproxy.envoy "already installed" and skip the install).
collections="$work/collections"
mkdir -p "$collections"
cat >"$work/ansible.cfg" <<EOF
[defaults]
collections_path = $collections
EOF
export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$collections"
unset ANSIBLE_COLLECTIONS_PATHS ANSIBLE_INVENTORY
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_DEPRECATION_WARNINGS=0
cd "$work"

step "ansible-galaxy collection install --offline"
# Dependencies (amazon.aws, community.docker) come with the
# `ansible` package; --offline keeps Galaxy out of it.
ansible-galaxy collection install --offline -p "$collections" "$tarball" >/dev/null
installed="$collections/ansible_collections/$namespace/$name"
if [ -f "$installed/MANIFEST.json" ]; then ok "installed at $installed"; else fail "nothing installed at $installed"; fi
found=$(ansible-galaxy collection list "$namespace.$name" 2>/dev/null | awk '/^# /{print $2}')
if [ "$found" = "$collections/ansible_collections" ]; then
  ok "$namespace.$name resolves only from the installed copy"
else
  fail "$namespace.$name resolves from: ${found:-nowhere}"
fi

# --- 3. ansible-doc and syntax checks from the installed copy ----------------
# ansible-doc's first line names the file it documents: it must be the installed one.
doc() {
  local label=$1; shift
  # (ansible-doc prints bold escapes even into a pipe; drop them before matching.)
  # Any diagnostic of Ansible's own fails the check; a Python library's warning about
  # ansible-core itself (cryptography's DSA deprecation, say) is not the collection's.
  if ! ansible-doc "$@" 2>"$work/doc.err" | sed 's/\x1b\[[0-9;]*m//g' >"$work/doc.out" ||
    grep -qE '^\[(WARNING|ERROR|DEPRECATION WARNING)\]' "$work/doc.err"; then
    # Ansible's own diagnostics first: libraries' warnings (cryptography's) come before them.
    fail "ansible-doc $* failed: $({ grep -E '^\[' "$work/doc.err"; grep -vE '^\[' "$work/doc.err"; } | head -3)"
  elif ! head -1 "$work/doc.out" | grep -qF "($installed"; then
    fail "ansible-doc $* did not document the installed copy: $(head -1 "$work/doc.out")"
  elif [ "$(wc -l <"$work/doc.out")" -lt 5 ]; then
    fail "ansible-doc $* rendered almost nothing"
  else
    ok "ansible-doc $label"
  fi
}

step "ansible-doc: plugins"
declare -A contract=([module]="tproxy_kernel host_probe ec2_source_dest_check" [connection]="netns")
for type in module connection filter test lookup inventory callback; do
  mapfile -t names < <(ansible-doc -t "$type" -l "$namespace.$name" 2>/dev/null | awk '{print $1}')
  for required in ${contract[$type]:-}; do
    printf '%s\n' "${names[@]}" | grep -qx "$namespace.$name.$required" || fail "ansible-doc lists no $type $namespace.$name.$required"
  done
  for plugin in "${names[@]}"; do
    [ -n "$plugin" ] && doc "-t $type $plugin" -t "$type" "$plugin"
  done
done

step "ansible-doc: role entry points"
shopt -s nullglob
for spec in "$installed"/roles/*/meta/argument_specs.yml; do
  role=$(basename "$(dirname "$(dirname "$spec")")")
  mapfile -t entry_points < <(python3 -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["argument_specs"]))' "$spec")
  for entry in "${entry_points[@]}"; do
    doc "-t role $namespace.$name.$role -e $entry" -t role "$namespace.$name.$role" -e "$entry"
    grep -qE "^ENTRY POINT: \*?$entry\*? " "$work/doc.out" || fail "ansible-doc -t role $role -e $entry shows no entry point $entry"
  done
done

step "ansible-playbook --syntax-check"
for playbook in "$installed"/playbooks/*.yml; do
  fqcn="$namespace.$name.$(basename "$playbook" .yml)"
  inventory="$installed/inventories/lab"
  case "$fqcn" in *aws_infra*) inventory=localhost, ;; esac
  if ansible-playbook --syntax-check "$fqcn" -i "$inventory" >"$work/syntax.out" 2>&1; then
    ok "syntax of $fqcn"
  else
    fail "syntax check of $fqcn: $(tail -5 "$work/syntax.out")"
  fi
done

# --- 4. module_defaults groups ----------------------------------------------
step "action groups (module_defaults)"
# Each default below changes what the module does, so a group that does not reach
# the module makes its task fail or answer differently.
cat >"$work/groups.yml" <<'EOF'
- name: Module defaults by group reach the collection's modules
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Report on a kernel tree that does not exist, without failing (defaults of group tproxy)
      module_defaults:
        group/tproxy.envoy.tproxy:
          root: /nonexistent
          load: false
          fail_on_missing: false
      tproxy.envoy.tproxy_kernel:
      register: groups_kernel
    - name: Refuse instance_ids from group aws beside the task's filters
      module_defaults:
        group/tproxy.envoy.aws:
          instance_ids: [i-0123456789abcdef0]
      tproxy.envoy.ec2_source_dest_check:
        filters:
          "tag:tproxy-role": router
        enabled: false
      register: groups_aws
      ignore_errors: true
    - name: Check that both defaults were applied
      ansible.builtin.assert:
        that:
          - not groups_kernel.supported
          - groups_kernel.kernel is defined
          - groups_aws is failed
          - "'mutually exclusive: instance_ids|filters' in groups_aws.msg"
EOF
if ansible-playbook -i localhost, "$work/groups.yml" >"$work/groups.out" 2>&1; then
  ok "group/$namespace.$name.tproxy and group/$namespace.$name.aws reach the modules"
else
  fail "module_defaults groups: $(grep -E 'FAILED|msg' "$work/groups.out" | tail -5)"
fi

# --- optional: the real playbooks from the installed copy against the lab ----
if [ "$run_lab" = 1 ]; then
  step "site, verify, teardown from the installed copy against the lab, with an inventory of its own"
  if ! "$repo/tools/lab/lab.sh" status >/dev/null 2>&1; then
    fail "the lab is not up (run make lab first)"
  else
    # What a user's inventory says: which host plays which part at which address, how Ansible
    # reaches it (here the lab's netns connection and holder PID files, on a real host SSH) and
    # which images to run (here the ones the lab built; by default the public ones).
    inventory="$work/inventory"
    mkdir -p "$inventory/group_vars"
    (cd "$repo" && python3 tools/lab/inventory.py json) | python3 -c '
import json, sys, yaml
lab = json.load(sys.stdin)
groups = {}
for host in lab["hosts"].values():
    entry = {"ansible_host": host["address"], "ansible_netns_pidfile": host["pidfile"]}
    if host.get("address6"):
        entry["tproxy_ipv6_address"] = host["address6"]
    for group in host["groups"]:
        groups.setdefault(group, {"hosts": {}})["hosts"][host["name"]] = entry
print("# Written by tools/scripts/build-install-test.sh for the running lab.")
print(yaml.safe_dump({"all": {"children": groups}}, sort_keys=True), end="")
' >"$inventory/hosts.yml"
    # The lab images are its own (tools/lab/images.sh): their names and settings come from the
    # lab's group_vars, the only values taken from the repository's inventory.
    python3 - "$repo/inventories/lab/group_vars/all.yml" >"$inventory/group_vars/all.yml" <<'PY'
import sys, yaml
images = yaml.safe_load(open(sys.argv[1]))
print("""# Lab hosts are entered through their namespaces, run commands as root already (no sudo) and
# share the controller's /usr, so modules run with the controller's Python.
ansible_connection: tproxy.envoy.netns
ansible_become: false
ansible_python_interpreter: "{{ ansible_playbook_python }}"
ansible_remote_tmp: /tmp/.ansible/tmp""")
print(yaml.safe_dump(images, sort_keys=True), end="")
PY
    echo "inventory of its own: $inventory"; sed 's/^/    /' "$inventory/hosts.yml" "$inventory/group_vars/all.yml"
    for playbook in site verify teardown; do
      if [ "$playbook" = teardown ] && [ -n "$while_up" ]; then
        # A failure here is reported, and teardown still runs.
        if (cd "$repo" && bash -c "$while_up"); then ok "while up: $while_up"; else fail "while up: $while_up"; fi
      fi
      if ansible-playbook "$namespace.$name.$playbook" -i "$inventory"; then
        ok "$namespace.$name.$playbook against the lab (inventory $inventory)"
      else
        fail "$namespace.$name.$playbook against the lab"
        break
      fi
    done
  fi
fi

echo "build-install: $failures failure(s) in ${SECONDS}s"
[ "$failures" = 0 ]
