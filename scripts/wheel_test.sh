#!/usr/bin/env bash
# CI's check of the wheel (`make wheel`): installed into a fresh venv with pip, beside the
# project's torch (linked into the venv, not downloaded again), the `bcl` command runs
# doctor, a 5-step training and predict with PATH stripped of cargo and neither LIBTORCH nor
# LD_LIBRARY_PATH set; without torch it says in one line which torch to install.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(ls dist/bcl_lt-*.whl | tail -1)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 -m venv "$W/venv"
"$W/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
site=$("$W/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
project_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# A clean environment: no cargo on PATH, no LIBTORCH, no LD_LIBRARY_PATH.
run() { env -i PATH="$W/venv/bin:/usr/bin:/bin" HOME="$HOME" ${BCL_FASHION_MNIST:+BCL_FASHION_MNIST="$BCL_FASHION_MNIST"} "$@"; }
echo "== $wheel: $(du -h "$wheel" | cut -f1)"
echo "== without torch"
if run bcl doctor 2>"$W/err"; then echo "bcl ran without torch" >&2; exit 1; fi
cat "$W/err"
grep -q "needs torch 2.11.0" "$W/err"
[ "$(wc -l <"$W/err")" = 1 ]
echo "== with another torch"
mkdir "$site/torch-2.10.0.dist-info"
printf 'Metadata-Version: 2.1\nName: torch\nVersion: 2.10.0\n' >"$site/torch-2.10.0.dist-info/METADATA"
if run bcl doctor 2>"$W/err"; then echo "bcl ran with torch 2.10.0" >&2; exit 1; fi
cat "$W/err"
grep -q "has torch 2.10.0: pip install torch==2.11.0" "$W/err"
rm -r "$site/torch-2.10.0.dist-info"
for entry in "$project_site"/torch "$project_site"/torch-2.11.0*.dist-info "$project_site"/nvidia; do
  ln -s "$entry" "$site/"
done
echo "== ldd of the installed binary (its RUNPATH finds the torch beside it)"
ldd "$site/bcl_lt/bin/bcl" >"$W/ldd"
grep -E "libtorch|libc10" "$W/ldd"
if grep -q "not found" "$W/ldd"; then echo "libraries not found" >&2; exit 1; fi
echo "== bcl doctor"
run bcl doctor
echo "== bcl train --preset fashion-mnist-lt --max-steps 5"
run bcl train --preset fashion-mnist-lt --max-steps 5 --out "$W/run" --device cpu
.venv/bin/python -c "from PIL import Image; Image.new('L', (28, 28), 128).save('$W/grey.png')"
echo "== bcl predict"
run bcl predict --checkpoint "$W/run/last" "$W/grey.png"
