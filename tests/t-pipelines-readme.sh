#!/bin/bash
# pipelines/README.md's variable table says what pipelines/Makefile does.
#
# The defaults are read from the Makefile itself (make --eval of a print
# rule, a clean environment, once with the default SIZE and once per SIZE)
# and compared cell by cell with the table's default column:
#   "A / B / C / D"   per SIZE: tiny / small / medium / full
#   "(none)", "generated" or blank: empty in the Makefile
#   a variable's name (`EPOCHS`): that variable's value
#   a relative path (`../build/bin`): that path from pipelines/, made absolute
#   anything else: the value itself (backticks removed)
# A row may name several variables ("`JOBS`, `THREADS`" | "2, 1"; one value
# for all of them when the cell has no comma).  Every variable the Makefile
# sets with ?= must have a row and every row must name such a variable.
# `make help` must mention every variable, and the table rows it prints
# must be the README's.
set -u
src=${SERTOOLS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
mk=$src/pipelines/Makefile
readme=$src/pipelines/README.md
sizes=(tiny small medium full)
fail=0
bad() {
	echo "FAIL: $*"
	fail=$((fail + 1))
}
command -v make >/dev/null || { echo "skip: no make"; exit 77; }
# make runs where nothing of the tree can be written to (the recipes do not
# run, and NEED_JOBS= keeps the job lists from being written at parse time).
work=$(mktemp -d "${TMPDIR:-/tmp}/t-pipelines-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The Makefile's user variables: NAME ?= ...
mapfile -t vars < <(sed -n 's/^\([A-Z_][A-Z0-9_]*\)[[:space:]]*?=.*/\1/p' "$mk" | sort -u)
[ ${#vars[@]} -gt 0 ] || { bad "$mk: no 'NAME ?=' variables found"; exit 1; }

# The table: "VARS US DEFAULT US LINE" for each row under "## Variables"
# (US, the unit separator, so that an empty cell stays a field).
us=$'\037'
table=$(awk -F'|' -v us="$us" '
	/^## / { inside = ($0 ~ /^## Variables/); next }
	!inside || !/^\|/ { next }
	{ v = $2; d = $3; gsub(/`/, "", v); gsub(/`/, "", d)
	  gsub(/^[ \t]+|[ \t]+$/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", d) }
	v == "variable" || v ~ /^-+$/ { next }
	{ print v us d us FNR }' "$readme")
[ -n "$table" ] || { bad "$readme: no table under '## Variables'"; exit 1; }

# value[SIZE:VAR] for SIZE in default tiny small full
declare -A value
read_values() { # LABEL [SIZE=...]
	local label=$1 line out
	shift
	if ! out=$(cd "$work" && env -i PATH="$PATH" make -s --no-print-directory -f "$mk" \
		--eval 'print-%: ; @: $(info $*=$($*))' NEED_JOBS= NCORES=1024 "$@" \
		"${vars[@]/#/print-}" 2>&1); then
		bad "make -f pipelines/Makefile $* print-...: $out"
		return
	fi
	while IFS= read -r line; do
		value[$label:${line%%=*}]=${line#*=}
	done <<<"$out"
}
read_values default
for s in "${sizes[@]}"; do
	read_values "$s" SIZE="$s"
done

declare -A in_table
# want CELL VAR LABEL: the value the cell stands for, for VAR with SIZE LABEL
want() {
	local cell=$1 label=$3
	case $cell in
	'' | '(none)' | generated) echo "" ;;
	../* | ./*) realpath -m "$src/pipelines/$cell" ;;
	*)
		if [[ $cell =~ ^[A-Z_][A-Z0-9_]*$ ]] && [ -n "${value[$label:$cell]+set}" ]; then
			echo "${value[$label:$cell]}"
		else
			echo "$cell"
		fi
		;;
	esac
}
while IFS=$us read -r names cell lineno; do
	IFS=',' read -ra row_vars <<<"${names// /}"
	per_size=()
	if [[ $cell == *' / '* ]]; then # split at ' / ' only: a value may be a path
		rest=$cell
		while [[ $rest == *' / '* ]]; do
			per_size+=("${rest%% / *}")
			rest=${rest#* / }
		done
		per_size+=("$rest")
	fi
	if [ ${#per_size[@]} -gt 0 ] && [ ${#per_size[@]} -ne ${#sizes[@]} ]; then
		bad "pipelines/README.md:$lineno: $names: '$cell' has ${#per_size[@]} values for ${#sizes[@]} sizes (${sizes[*]})"
		continue
	fi
	cells=("$cell")
	if [ ${#row_vars[@]} -gt 1 ] && [[ $cell == *,* ]]; then
		IFS=',' read -ra cells <<<"${cell//, /,}"
		if [ ${#cells[@]} -ne ${#row_vars[@]} ]; then
			bad "pipelines/README.md:$lineno: $names: '$cell' has ${#cells[@]} values for ${#row_vars[@]} variables"
			continue
		fi
	fi
	for i in "${!row_vars[@]}"; do
		v=${row_vars[$i]}
		c=${cells[$(( ${#cells[@]} > 1 ? i : 0 ))]}
		in_table[$v]=1
		if [ -z "${value[default:$v]+set}" ]; then
			bad "pipelines/README.md:$lineno: $v is not a variable of pipelines/Makefile (NAME ?= ...)"
			continue
		fi
		# one line per variable: the table's cell, and the Makefile's values that differ
		said=$cell differ=()
		[ ${#per_size[@]} -gt 0 ] || [ ${#row_vars[@]} -eq 1 ] || said=$c
		if [ ${#per_size[@]} -eq 0 ] && [ "$(want "$c" "$v" default)" != "${value[default:$v]}" ]; then
			differ+=("'${value[default:$v]}' by default")
		fi
		for j in "${!sizes[@]}"; do
			s=${sizes[$j]}
			[ "$v" = SIZE ] && continue
			[ ${#per_size[@]} -gt 0 ] && c=${per_size[$j]}
			[ "$(want "$c" "$v" "$s")" = "${value[$s:$v]}" ] || differ+=("'${value[$s:$v]}' for SIZE=$s")
		done
		if [ ${#differ[@]} -gt 0 ]; then
			printf -v got '%s, ' "${differ[@]}"
			bad "pipelines/README.md:$lineno: $v: the table says '$said', the Makefile gives ${got%, }"
		fi
	done
done <<<"$table"
for v in "${vars[@]}"; do
	[ -n "${in_table[$v]+set}" ] || bad "pipelines/Makefile sets $v ?= '${value[default:$v]-}' but pipelines/README.md's table has no row for it"
done

# make help: every variable named; markdown rows it prints are the README's
if help=$(cd "$work" && env -i PATH="$PATH" make -s --no-print-directory -C "$src/pipelines" help NEED_JOBS= NCORES=1024 2>&1); then
	for v in "${vars[@]}"; do
		grep -q -- "$v" <<<"$help" || bad "make -C pipelines help does not mention $v"
	done
	rows=$(sed -n '/^## Variables/,/^## /p' "$readme" | grep '^| `')
	help_rows=$(grep '^| `' <<<"$help")
	if [ -n "$help_rows" ] && [ "$help_rows" != "$rows" ]; then
		bad "make -C pipelines help prints a table other than pipelines/README.md's:"
		diff <(echo "$rows") <(echo "$help_rows") | sed 's/^/    /'
	fi
else
	bad "make -C pipelines help: $help"
fi

if [ $fail -gt 0 ]; then
	echo "$fail failure$([ $fail -gt 1 ] && echo s)"
	exit 1
fi
echo "ok (${#vars[@]} variables, sizes ${sizes[*]})"
