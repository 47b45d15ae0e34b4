#!/bin/bash
# tests/tools/test_onramp.sh BUILD — the onramp launcher (tools/onramp/onramp.in) and
# `make install`/`uninstall` (`make launcher-check`, part of `make check`). The launcher runs
# ordinary programs (sh) that print what they were given, with an empty file standing in for
# libonramp.so: nothing here needs the library to work (install only copies it). One line per
# case, "ok NAME" or "FAILED NAME: why", then "launcher: N passed, M failed"; exit 1 on any
# failure.
set -uo pipefail

build=${1:-build}
src=$(cd "$(dirname "$0")/../.." && pwd -P)
tmp=$(mktemp -d /tmp/onramp-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# The launcher as make builds it, with a stand-in library (keep in sync: LAUNCHER_SED in the
# Makefile). ld.so complains about the empty file on every exec; run_onramp drops those lines.
make_launcher() # OUT LIBRARY
{
	sed -e "s|@LIBONRAMP@|$2|g" -e "s|@PROFILE_DIR@|$src/env/profiles|g" \
		"$src/tools/onramp/onramp.in" > "$1" && chmod 0755 "$1"
}
fake_lib=$tmp/lib/libonramp.so
mkdir -p "$tmp/lib" && : > "$fake_lib"
launcher=$tmp/onramp
make_launcher "$launcher" "$fake_lib"

# What the program under the launcher sees: its LD_PRELOAD, its EF_ variables, its arguments.
show='printf "LD_PRELOAD=%s\n" "${LD_PRELOAD-(unset)}"; env | grep "^EF_" | sort
for a; do printf "arg=<%s>\n" "$a"; done'

# run_onramp [VAR=value...] -- ARGS...: the launcher with ARGS in an environment holding only
# PATH and the VARs (none of the caller's EF_ or LD_PRELOAD). Sets out, err (stderr without
# ld.so's lines) and rc.
run_onramp()
{
	local vars=()
	while [ "$1" != -- ]; do
		vars+=("$1")
		shift
	done
	shift
	out=$(env -i PATH="$PATH" "${vars[@]}" "${LAUNCHER:-$launcher}" "$@" 2> "$tmp/err")
	rc=$?
	err=$(grep -v '^ERROR: ld.so: ' "$tmp/err")
}

# ---- checks: each returns 1 with the reason in $why -------------------------------------------

fail()
{
	why=$*
	return 1
}

expect_rc()
{
	[ "$rc" = "$1" ] || fail "exit $rc, want $1 (stderr: $err)"
}

expect_out_line()
{
	grep -qxF -- "$1" <<< "$out" || fail "no line '$1' in stdout: $out"
}

expect_err_line()
{
	grep -qxF -- "$1" <<< "$err" || fail "no line '$1' on stderr: $err"
}

# A usage error is one line on stderr, naming what was wrong, and nothing on stdout.
expect_one_error_line() # WORD
{
	[ -z "$out" ] || fail "stdout not empty: $out" || return
	[ "$(wc -l <<< "$err")" = 1 ] && [ -n "$err" ] || fail "want one line on stderr: $err" ||
		return
	grep -qF -- "$1" <<< "$err" || fail "stderr does not name '$1': $err"
}

# The EF_ lines the program saw, against the ones wanted (a file's EF_ lines, sorted).
expect_ef_lines() # WANTED
{
	local got
	got=$(grep '^EF_' <<< "$out" | sort)
	[ "$got" = "$1" ] || fail "EF_ variables: got [$got], want [$1]"
}

profile_ef_lines() # NAME
{
	grep '^EF_' "$src/env/profiles/$1.env" | sort
}

run_case() # NAME FUNCTION
{
	why=
	if "$2" && [ -z "$why" ]; then
		echo "ok $1"
		passed=$((passed + 1))
	else
		echo "FAILED $1: ${why:-returned non-zero without a reason}"
		failed=$((failed + 1))
	fi
}

# ---- cases -------------------------------------------------------------------------------------

help__exits_0_and_describes_the_profiles_and_stackdump()
{
	local p
	run_onramp -- --help
	expect_rc 0 && expect_out_line "usage: onramp [--profile=NAME] [-v] [--] PROGRAM [ARGS...]" ||
		return
	for p in latency throughput lowmem; do
		grep -qE "^  $p +[^ ]" <<< "$out" || fail "--help does not list $p: $out" || return
	done
	grep -qF '`stackdump doc`' <<< "$out" || fail "--help does not point to stackdump doc" ||
		return
	grep -qxF "$fake_lib" <<< "$out" || fail "--help does not name the library it preloads"
}

list_profiles__gives_each_profile_with_its_summary()
{
	local p summary
	run_onramp -- --list-profiles
	expect_rc 0 || return
	[ "$(wc -l <<< "$out")" = "$(ls "$src"/env/profiles/*.env | wc -l)" ] ||
		fail "want one line per env/profiles/*.env: $out" || return
	for p in latency throughput lowmem; do
		# the summary is the profile's first line after "# env/profiles/NAME.env — "
		summary=$(head -n 1 "$src/env/profiles/$p.env" | sed 's/^# [^ ]* — //')
		grep -qE "^$p +" <<< "$out" || fail "$p not listed: $out" || return
		[ "$(grep -E "^$p +" <<< "$out" | sed -E "s/^$p +//")" = "$summary" ] ||
			fail "$p: want summary '$summary': $out" || return
	done
}

profile__exports_its_variables_in_each_spelling()
{
	run_onramp -- --profile=latency sh -c "$show" sh
	expect_rc 0 && expect_ef_lines "$(profile_ef_lines latency)" || return
	run_onramp -- --profile throughput sh -c "$show" sh
	expect_rc 0 && expect_ef_lines "$(profile_ef_lines throughput)" || return
	run_onramp -- -p lowmem sh -c "$show" sh
	expect_rc 0 && expect_ef_lines "$(profile_ef_lines lowmem)" || return
	run_onramp -- sh -c "$show" sh
	expect_rc 0 && expect_ef_lines "" && [ -z "$err" ] || fail "stderr without -v: $err"
}

profile__never_overrides_a_variable_the_user_set()
{
	local want
	run_onramp EF_POLL_USEC=7 EF_PREALLOC_PACKETS= EF_LOG=3 -- -p latency sh -c "$show" sh
	want=$( (profile_ef_lines latency | grep -v -e '^EF_POLL_USEC=' -e '^EF_PREALLOC_PACKETS='
		printf 'EF_POLL_USEC=7\nEF_PREALLOC_PACKETS=\nEF_LOG=3\n') | sort)
	expect_rc 0 && expect_ef_lines "$want"
}

ld_preload__library_first_kept_entries_after_it_never_twice()
{
	run_onramp -- sh -c "$show" sh
	expect_rc 0 && expect_out_line "LD_PRELOAD=$fake_lib" || return
	run_onramp LD_PRELOAD="/a/libx.so /b/liby.so" -- sh -c "$show" sh
	expect_rc 0 && expect_out_line "LD_PRELOAD=$fake_lib:/a/libx.so:/b/liby.so" || return
	run_onramp LD_PRELOAD="/a/libx.so:$fake_lib:/b/liby.so" -- sh -c "$show" sh
	expect_rc 0 && expect_out_line "LD_PRELOAD=$fake_lib:/a/libx.so:/b/liby.so" || return
	# another libonramp.so (an installed one) would interpose twice
	run_onramp LD_PRELOAD="/usr/local/lib/onramp/libonramp.so:/a/libx.so" -- sh -c "$show" sh
	expect_rc 0 && expect_out_line "LD_PRELOAD=$fake_lib:/a/libx.so"
}

verbose__prints_each_variable_with_its_source()
{
	run_onramp EF_POLL_USEC=7 EF_NAME=web -- -v -p latency sh -c "$show" sh
	expect_rc 0 &&
		expect_err_line "onramp: LD_PRELOAD=$fake_lib" &&
		expect_err_line "onramp: EF_MAX_PACKETS=32768 (profile latency)" &&
		expect_err_line "onramp: EF_POLL_USEC=7 (environment; profile latency has 100000)" &&
		expect_err_line "onramp: EF_NAME=web (environment)" || return
	grep -q '^onramp: ' <<< "$out" || return 0
	fail "-v wrote to stdout: $out"
}

unknown_profile__exits_2_naming_it_and_the_known_ones()
{
	run_onramp -- --profile=fast true
	expect_rc 2 && expect_one_error_line "'fast'" || return
	grep -qF "latency lowmem throughput" <<< "$err" || fail "known profiles not listed: $err" ||
		return
	# a path is no profile name, even one that leads to a profile
	run_onramp -- -p ../profiles/latency true
	expect_rc 2 && expect_one_error_line "'../profiles/latency'"
}

usage_errors__exit_2_with_one_line()
{
	run_onramp --
	expect_rc 2 && expect_one_error_line "no program" || return
	run_onramp -- -p latency --
	expect_rc 2 && expect_one_error_line "no program" || return
	run_onramp -- --frobnicate true
	expect_rc 2 && expect_one_error_line "--frobnicate" || return
	run_onramp -- -p
	expect_rc 2 && expect_one_error_line "-p needs a profile name" || return
	run_onramp -- --profile= true
	expect_rc 2 && expect_one_error_line "--profile= needs a profile name"
}

missing_program__exits_127_as_a_shell_does()
{
	run_onramp -- no-such-program-$$ a b
	expect_rc 127 && expect_one_error_line "no-such-program-$$: program not found in PATH" ||
		return
	run_onramp -- ./no-such-file-$$
	expect_rc 127 && expect_one_error_line "./no-such-file-$$: no such file" || return
	# a builtin of the launcher's own shell is no program
	run_onramp PATH=/nonexistent -- echo hi
	expect_rc 127 && expect_one_error_line "echo: program not found in PATH" || return
	run_onramp -- "$src/README.md"
	expect_rc 126 && expect_one_error_line "not an executable file"
}

double_dash__ends_options_and_program_arguments_are_not_options()
{
	# after --, "--help" is the program's name
	run_onramp -- -- --help
	expect_rc 127 && expect_one_error_line "--help: program not found" || return
	# options stop at the program: its -p and -v are its own
	run_onramp -- -p latency sh -c "$show" sh -p lowmem -v --help
	expect_rc 0 && expect_ef_lines "$(profile_ef_lines latency)" &&
		expect_out_line "arg=<-p>" && expect_out_line "arg=<lowmem>" &&
		expect_out_line "arg=<-v>" && expect_out_line "arg=<--help>" || return
	[ -z "$err" ] || fail "the program's -v was taken as the launcher's: $err"
}

arguments__reach_the_program_unchanged()
{
	local args=("a b" "" "  two  spaces  " '*' '$HOME' $'new\nline') got want
	run_onramp -- sh -c "$show" sh "${args[@]}"
	want=$(printf 'arg=<%s>\n' "${args[@]}")
	got=$(sed -n '/^arg=/,$p' <<< "$out")
	expect_rc 0 && [ "$got" = "$want" ] || fail "arguments: got [$got], want [$want]"
}

unusable_library__exits_1_naming_it()
{
	make_launcher "$tmp/onramp-nolib" "$tmp/none/libonramp.so"
	LAUNCHER=$tmp/onramp-nolib run_onramp -- -p latency true
	expect_rc 1 && expect_one_error_line "$tmp/none/libonramp.so: no such file" || return
	# help and the profiles need no library
	LAUNCHER=$tmp/onramp-nolib run_onramp -- --list-profiles
	expect_rc 0 || return
	# ld.so cannot take a path with a space: say so rather than preload half of it
	mkdir -p "$tmp/lib dir" && : > "$tmp/lib dir/libonramp.so"
	make_launcher "$tmp/onramp-space" "$tmp/lib dir/libonramp.so"
	LAUNCHER=$tmp/onramp-space run_onramp -- true
	expect_rc 1 && expect_one_error_line "a path with a space or a colon"
}

build_tree_launcher__points_at_the_build_tree()
{
	local built=$build/tools/onramp/onramp
	[ -x "$built" ] || fail "$built not built" || return
	grep -qxF "lib='$(cd "$build" && pwd -P)/libonramp.so'" "$built" ||
		fail "$built: library is not $build/libonramp.so: $(grep "^lib=" "$built")" || return
	LAUNCHER=$built run_onramp -- --list-profiles
	expect_rc 0 && grep -qE '^latency +[^ ]' <<< "$out" || fail "$built --list-profiles: $out"
}

install__puts_each_file_in_place_and_uninstall_removes_them()
{
	local d=$tmp/destdir prefix=/opt/onramp-test inst f left
	mkdir -p "$d"
	${MAKE:-make} -C "$src" --no-print-directory install DESTDIR="$d" PREFIX=$prefix \
		> "$tmp/install.log" 2>&1 || fail "make install: $(tail -n 5 "$tmp/install.log")" ||
		return
	inst=$d$prefix
	for f in bin/onramp bin/stackdump; do
		[ -x "$inst/$f" ] || fail "$prefix/$f not installed executable" || return
	done
	for f in "$src"/env/profiles/*.env; do
		cmp -s "$f" "$inst/share/onramp/profiles/${f##*/}" ||
			fail "profile ${f##*/} not installed in $prefix/share/onramp/profiles" || return
	done
	cmp -s "$build/libonramp.so" "$inst/lib/onramp/libonramp.so" ||
		fail "$build/libonramp.so not installed in $prefix/lib/onramp" || return
	grep -qxF "lib='$prefix/lib/onramp/libonramp.so'" "$inst/bin/onramp" &&
		grep -qxF "profile_dir='$prefix/share/onramp/profiles'" "$inst/bin/onramp" ||
		fail "installed launcher's paths: $(grep -E '^(lib|profile_dir)=' "$inst/bin/onramp")" ||
		return
	! grep -q '@[A-Z_]*@' "$inst/bin/onramp" || fail "placeholder left in the installed launcher" ||
		return
	${MAKE:-make} -C "$src" --no-print-directory uninstall DESTDIR="$d" PREFIX=$prefix \
		> "$tmp/install.log" 2>&1 || fail "make uninstall: $(tail -n 5 "$tmp/install.log")" ||
		return
	left=$(cd "$d" && find . -type f | head -n 5)
	[ -z "$left" ] || fail "left after uninstall: $left" || return
	[ ! -e "$inst/share/onramp" ] && [ ! -e "$inst/lib/onramp" ] ||
		fail "uninstall left the share/onramp or lib/onramp folder"
}

for c in help__exits_0_and_describes_the_profiles_and_stackdump \
	list_profiles__gives_each_profile_with_its_summary \
	profile__exports_its_variables_in_each_spelling \
	profile__never_overrides_a_variable_the_user_set \
	ld_preload__library_first_kept_entries_after_it_never_twice \
	verbose__prints_each_variable_with_its_source \
	unknown_profile__exits_2_naming_it_and_the_known_ones \
	usage_errors__exit_2_with_one_line \
	missing_program__exits_127_as_a_shell_does \
	double_dash__ends_options_and_program_arguments_are_not_options \
	arguments__reach_the_program_unchanged \
	unusable_library__exits_1_naming_it \
	build_tree_launcher__points_at_the_build_tree \
	install__puts_each_file_in_place_and_uninstall_removes_them; do
	run_case "$c" "$c"
done
echo "launcher: $passed passed, $failed failed"
[ "$failed" = 0 ]
