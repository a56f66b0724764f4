#!/usr/bin/env bash
# Package one stage for AWS in both formats, each a complete stack:
#   OUT/sam/        sam.json + deployment.zip   (chalice package --merge-template OUT/merge.json)
#   OUT/terraform/  chalice.tf.json + stack.tf.json + stack_override.tf.json + deployment.zip
#   both also get geoparquet.zip: the scheduled stac-geoparquet function (deploy/geoparquet_package.py)
# Usage: scripts/package.sh STAGE [OUT]   (OUT defaults to build/STAGE; PYTHON defaults to .venv/bin/python)
set -euo pipefail
stage=${1:?usage: scripts/package.sh STAGE [OUT]}
cd "$(dirname "$0")/.."
out=$(realpath -m "${2:-build/$stage}")
py=${PYTHON:-.venv/bin/python}
py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")  # absolute, links kept (a venv's python is one)
chalice=("$py" -c "import sys; from chalice.cli import main; sys.exit(main())")

# The roles' policies are generated from the stage's settings; a stale checked-in copy is an error.
for fn in on_store_event:policy-$stage api_handler:policy-$stage-api; do
    file=.chalice/${fn#*:}.json
    if ! diff -u "$file" <("$py" -m deploy.stack policy --stage "$stage" --function "${fn%%:*}"); then
        echo "stale $file: $py -m deploy.stack policy --stage $stage --function ${fn%%:*} > $file" >&2
        exit 1
    fi
done
rm -rf "$out" && mkdir -p "$out"
# app.py reads the queue's name while Chalice imports it to package.
export $("$py" -m deploy.stack env --stage "$stage")
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-eu-west-1}  # packaging needs a region, not credentials
"$py" -m deploy.stack sam --stage "$stage" > "$out/merge.json"
# Chalice zips chalicelib/ as it finds it: package a clean copy (no __pycache__ of local runs).
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
tar --exclude=__pycache__ -cf - app.py requirements.txt chalicelib .chalice | tar -xf - -C "$src"
(cd "$src" && "${chalice[@]}" package --stage "$stage" --merge-template "$out/merge.json" "$out/sam" &&
               "${chalice[@]}" package --stage "$stage" --pkg-format terraform "$out/terraform")
"$py" -m deploy.stack terraform --stage "$stage" --out "$out/terraform"
# CloudFormation reads templates up to 1 MB (through S3); Chalice indents its swagger, which alone nears it.
"$py" -c 'import json, sys; p = sys.argv[1]; d = json.load(open(p)); json.dump(d, open(p, "w"), separators=(",", ":"))' \
    "$out/sam/sam.json"
# Third-party wheels' own test suites (onnx: 12 MB zipped) are never imported: drop them.
"$py" -m deploy.prune "$out/sam/deployment.zip" "$out/terraform/deployment.zip"
# Lambda cannot write __pycache__: ship the cold-start modules compiled (deploy/bytecode.py).
"$py" -m deploy.bytecode "$out/sam/deployment.zip" "$out/terraform/deployment.zip"
# The geoparquet function's own zip (pyarrow: never in deployment.zip), next to each template.
"$py" -m deploy.geoparquet_package "$out/sam/geoparquet.zip" "$out/terraform/geoparquet.zip"
"$py" - "$out/sam/deployment.zip" <<'PY'
import os, sys, zipfile
path = sys.argv[1]
unzipped = sum(i.file_size for i in zipfile.ZipFile(path).infolist())
print(f"deployment.zip: {os.path.getsize(path) / 1e6:.1f} MB zipped (limit 50), "
      f"{unzipped / 1e6:.1f} MB unzipped (limit 250)")
PY
