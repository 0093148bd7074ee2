# Sourced by the build and test scripts: the SIMD targets and their flags from
# csrc/targets.txt (the one list; setup.py reads it too).
#   fl_simd_targets            -> "avx2 avx512" (x86-64 targets besides baseline)
#   fl_simd_flags NAME         -> sets the array tf to NAME's GCC/Clang flags
#                                 (empty for baseline; exits 2 for unknown names)
_fl_targets_file="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/csrc/targets.txt"
fl_simd_targets() {
    awk -F'|' '!/^#/ && NF >= 2 { gsub(/ /, "", $1); printf "%s ", $1 }' "$_fl_targets_file"
}
fl_simd_flags() {
    tf=()
    [ "$1" = baseline ] && return 0
    local line
    line=$(awk -F'|' -v t="$1" '!/^#/ && NF >= 2 { n = $1; gsub(/ /, "", n); if (n == t) print $2 }' "$_fl_targets_file")
    if [ -z "$line" ]; then
        echo "unknown SIMD target $1 (csrc/targets.txt)" >&2
        exit 2
    fi
    read -r -a tf <<< "$line"
}
