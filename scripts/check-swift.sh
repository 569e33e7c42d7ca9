#!/usr/bin/env bash
# scripts/check-swift.sh -- what can be checked of the Swift bindings without a Swift
# compiler (none exists for this machine kind): generates fresh bindings (the app build, no
# test fixtures), then
#   1. clang parses the C header (C and Objective-C) and imports it as the module the
#      modulemap declares;
#   2. every function the header declares is exported by the library (nm -D), and every
#      UniFFI symbol the library exports is declared;
#   3. a C smoke test through the header: the contract version and every API checksum equal
#      what the Swift file expects (what Swift's initialization check compares), RustBuffer
#      and object lifecycles, an enum argument, and a hostile one refused with an error status;
#   4. tree-sitter-swift parses the generated .swift without an error node.
# Prints "N passed, N failed"; exits non-zero on any failure.
#
# Needs: clang (apt-get install clang), python3 with tree-sitter and tree-sitter-swift
# (pip install tree-sitter tree-sitter-swift), binutils (nm).
set -uo pipefail

cd "$(dirname "$(readlink -f "$0")")/.." || exit 2
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS $1"; }
ko() { failed=$((failed + 1)); echo "FAIL $1"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; exit $?; }

command -v clang >/dev/null 2>&1 || { ko "clang is installed (apt-get install clang)"; finish; }
command -v nm >/dev/null 2>&1 || { ko "nm is installed (binutils)"; finish; }

work=target/swift-check
rm -rf "$work"
mkdir -p "$work"
if ! scripts/gen-bindings.sh "$work/bindings" >"$work/gen.log" 2>&1; then
  cat "$work/gen.log"
  ko "gen-bindings.sh"
  finish
fi
swift_dir="$work/bindings/swift"
header="$swift_dir/RoamCoreFFI.h"
lib="$work/bindings/lib/libroam_ffi.so"

# 1. the header and the module map
printf '#include "RoamCoreFFI.h"\n' >"$work/include.c"
if clang -fsyntax-only -Wall -Werror -I "$swift_dir" -x c "$work/include.c" \
  && clang -fsyntax-only -Wall -Werror -I "$swift_dir" -x objective-c "$work/include.c"; then
  ok "clang parses RoamCoreFFI.h as C and Objective-C"
else
  ko "clang parses RoamCoreFFI.h as C and Objective-C"
fi
grep -q '^module RoamCoreFFI' "$swift_dir/RoamCoreFFI.modulemap" \
  && grep -q 'header "RoamCoreFFI.h"' "$swift_dir/RoamCoreFFI.modulemap" \
  || ko "the modulemap declares module RoamCoreFFI with its header"
# Darwin is not a module on Linux: check the map with the platform-only `use` lines removed.
mkdir -p "$work/module"
cp "$header" "$work/module/"
grep -v '^\s*use "Darwin"' "$swift_dir/RoamCoreFFI.modulemap" >"$work/module/module.modulemap"
printf '@import RoamCoreFFI;\nint main(void) { return (int)ffi_roam_ffi_uniffi_contract_version() == 0; }\n' >"$work/import.m"
if clang -fsyntax-only -fmodules -fmodules-cache-path="$work/modcache" -I "$work/module" "$work/import.m"; then
  ok "clang imports the header through the module map"
else
  ko "clang imports the header through the module map"
fi

# 2. exported symbols against the header
python3 - "$header" >"$work/declared.txt" <<'PY' || ko "list the header's functions"
import re, sys
text = open(sys.argv[1]).read()
names = re.findall(r'^(?!typedef)[A-Za-z_][\w \*]*?\b((?:uniffi|ffi)_roam_ffi_\w+)\(', text, re.M)
print("\n".join(sorted(set(names))))
PY
nm -D --defined-only "$lib" | awk '{print $NF}' | grep -E '^(uniffi|ffi)_roam_ffi_' | sort -u >"$work/exported.txt"
missing=$(comm -23 "$work/declared.txt" "$work/exported.txt")
undeclared=$(comm -13 "$work/declared.txt" "$work/exported.txt")
if [ -s "$work/declared.txt" ] && [ -z "$missing" ]; then
  ok "all $(wc -l <"$work/declared.txt") header functions are exported by the library"
else
  ko "header functions missing from the library: ${missing:-<no functions found in the header>}"
fi
if [ -z "$undeclared" ]; then ok "every exported UniFFI symbol is in the header"; else ko "exported but not declared: $undeclared"; fi

# 3. a C smoke test through the header
python3 - "$swift_dir/RoamCore.swift" "$work/declared.txt" >"$work/smoke.c" <<'PY' || ko "generate the C smoke test"
import re, sys
swift = open(sys.argv[1]).read()
declared = set(open(sys.argv[2]).read().split())
version = re.search(r'let bindings_contract_version = (\d+)', swift).group(1)
checks = re.findall(r'if \((uniffi_roam_ffi_checksum_\w+)\(\) != (\d+)\)', swift)
assert checks, "no checksum checks found in the Swift file"
for name, _ in checks:
    assert name in declared, name
print('#include <stdio.h>\n#include <string.h>\n#include "RoamCoreFFI.h"\n')
print('static int bad = 0, total = 0;')
print('#define CHECK(c, what) do { total++; if (!(c)) { printf("smoke: %s\\n", what); bad++; } } while (0)')
print('int main(void) {')
print(f'  CHECK(ffi_roam_ffi_uniffi_contract_version() == {version}, "contract version");')
for name, value in checks:
    print(f'  CHECK({name}() == {value}, "{name}");')
print(r'''
  RustCallStatus st;
  memset(&st, 0, sizeof st);
  RustBuffer b = ffi_roam_ffi_rustbuffer_alloc(16, &st);
  CHECK(st.code == 0 && b.capacity >= 16 && b.data != NULL, "rustbuffer_alloc");
  ffi_roam_ffi_rustbuffer_free(b, &st);
  CHECK(st.code == 0, "rustbuffer_free");

  /* SecretText("x"): construct, call a method on a cloned handle, free. */
  const uint8_t x[] = {'x'};
  ForeignBytes fb = { 1, x };
  RustBuffer s = ffi_roam_ffi_rustbuffer_from_bytes(fb, &st);
  CHECK(st.code == 0 && s.len == 1, "rustbuffer_from_bytes");
  uint64_t h = uniffi_roam_ffi_fn_constructor_secrettext_new(s, &st);
  CHECK(st.code == 0 && h != 0, "SecretText.new");
  uint64_t h2 = uniffi_roam_ffi_fn_clone_secrettext(h, &st);
  CHECK(st.code == 0, "SecretText clone");
  int8_t empty = uniffi_roam_ffi_fn_method_secrettext_is_empty(h2, &st);
  CHECK(st.code == 0 && empty == 0, "SecretText.isEmpty");
  uniffi_roam_ffi_fn_free_secrettext(h, &st);
  CHECK(st.code == 0, "SecretText free");

  /* set_log_level(LogLevel.Warn): an enum is an i32 variant index (1-based, big-endian). */
  const uint8_t warn[] = {0, 0, 0, 3};
  RustBuffer level = ffi_roam_ffi_rustbuffer_from_bytes((ForeignBytes){4, warn}, &st);
  uniffi_roam_ffi_fn_func_set_log_level(level, &st);
  CHECK(st.code == 0, "set_log_level(Warn)");
  /* A variant that does not exist is refused with an error status, not a crash. */
  const uint8_t hostile[] = {0, 0, 0, 99};
  level = ffi_roam_ffi_rustbuffer_from_bytes((ForeignBytes){4, hostile}, &st);
  RustCallStatus st2;
  memset(&st2, 0, sizeof st2);
  uniffi_roam_ffi_fn_func_set_log_level(level, &st2);
  CHECK(st2.code != 0, "set_log_level(99) is refused");
  if (st2.errorBuf.data != NULL) ffi_roam_ffi_rustbuffer_free(st2.errorBuf, &st);

  printf("smoke: %d of %d checks failed\n", bad, total);
  return bad != 0;
}''')
PY
if clang -Wall -Werror -I "$swift_dir" -o "$work/smoke" "$work/smoke.c" -L "$(dirname "$lib")" -lroam_ffi \
  && LD_LIBRARY_PATH="$(dirname "$lib")" "$work/smoke"; then
  ok "C smoke test through the header"
else
  ko "C smoke test through the header"
fi

# 4. a syntax parse of the generated Swift bindings and of the Swift shell under ios/
swift_check() {
  python3 - "$@" <<'PY'
import re, sys
try:
    import tree_sitter_swift
    from tree_sitter import Language, Parser
except ImportError as e:
    print(f"tree-sitter-swift missing ({e}): pip install tree-sitter tree-sitter-swift")
    sys.exit(1)
parser = Parser(Language(tree_sitter_swift.language()))
# The parser is not vacuous: broken Swift has errors.
assert parser.parse(b"func f( { let = }").root_node.has_error, "the parser accepts broken Swift"
status = 0
for path in sys.argv[1:]:
    source = open(path, "rb").read()
    # Two gaps of the tree-sitter-swift grammar, rewritten to what Swift means by them (each
    # rewrite is counted and printed; every other line is parsed as written):
    #  - an attribute that an `#if` block separates from its declaration: UniFFI's
    #    `#if swift(>=5.8) @_documentation(...) #endif` is resolved as Swift 5.8+ does;
    #  - a closure returning the empty tuple, `{ () }`, is written `{ }` (the same closure).
    source, resolved = re.subn(rb"#if swift\(>=5\.8\)\n([ \t]*@_documentation\(visibility: private\))\n#endif\n",
                               rb"\1\n", source)
    source, closures = re.subn(rb"= \{ \(\) \}$", rb"= { }", source, flags=re.M)
    tree = parser.parse(source)
    bad = []
    stack = [tree.root_node]
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            bad.append(n)
        stack.extend(n.children)
    lines = source.splitlines()
    for n in bad[:10]:
        line = n.start_point[0] + 1
        text = lines[line - 1].decode(errors="replace").strip()[:100] if line <= len(lines) else ""
        print(f"swift parse: {path}:{line}: {'missing ' + n.type if n.is_missing else 'error'}: {text}")
    print(f"swift parse: {path}: {len(lines)} lines, {len(bad)} error nodes"
          f" ({resolved} '#if swift(>=5.8)' attribute blocks and {closures} '{{ () }}' closures rewritten)")
    if bad or tree.root_node.has_error:
        status = 1
sys.exit(status)
PY
}
if swift_check "$swift_dir/RoamCore.swift"; then
  ok "tree-sitter-swift parses the generated RoamCore.swift"
else
  ko "tree-sitter-swift parses the generated RoamCore.swift"
fi
mapfile -t shell_swift < <(find ios -name '*.swift' -not -path 'ios/.build/*' -not -path 'ios/Sources/RoamCore/*' | sort)
if [ "${#shell_swift[@]}" -gt 0 ] && swift_check "${shell_swift[@]}"; then
  ok "tree-sitter-swift parses the Swift shell under ios/ (${#shell_swift[@]} files)"
else
  ko "tree-sitter-swift parses the Swift shell under ios/"
fi

finish
