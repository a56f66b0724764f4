"""Add compiled bytecode of the cold-start modules to a Lambda deployment zip.

Lambda's code directory is read-only, so a function whose zip carries only ``.py`` files compiles every
module it imports on every cold start (measured here: 0.41 CPU-s to the first STAC search answer
instead of 0.20). Compiling *everything* would push the zip past the 50 MB upload limit, so only the
modules a cold start imports are compiled: those loaded by importing ``app`` and answering a STAC
search and an SQS batch, found by running them from the unzipped package. The ``.pyc`` files are
``unchecked-hash`` ones (valid whatever the extracted files' timestamps), built by this interpreter,
which must be the Lambda runtime's Python version (as ``chalice package`` already requires).

    python -m deploy.bytecode ZIP [ZIP...]   # the same files are added to every zip given
"""
from __future__ import annotations

import json
import py_compile
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Imports app and runs both handlers once over an empty local store; prints the package's modules it loaded.
_WARM = r"""
import json, os, sys
root = sys.argv[1]
sys.path.insert(0, root)
import app
search = {"resource": "/stac/search", "path": "/stac/search", "httpMethod": "GET", "headers": {"Host": "h"},
          "multiValueHeaders": {"Host": ["h"]}, "queryStringParameters": {"limit": "1"},
          "multiValueQueryStringParameters": {"limit": ["1"]}, "pathParameters": None, "stageVariables": None,
          "requestContext": {"resourcePath": "/stac/search", "httpMethod": "GET", "stage": "api", "domainName": "h",
                             "path": "/api/stac/search"}, "body": None, "isBase64Encoded": False}
assert app.app(search, None)["statusCode"] == 200
body = json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                               "s3": {"bucket": {"name": "b"}, "object": {"key": "collections/dataset/items/x.json"}}}]})
batch = {"Records": [{"messageId": "m", "receiptHandle": "r", "body": body, "attributes": {}, "messageAttributes": {},
                      "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                      "awsRegion": "us-east-1"}]}
app.on_store_event(batch, None)
files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
print(json.dumps(sorted(f for f in files if f and f.startswith(root + os.sep) and f.endswith(".py"))))
"""


def cold_start_modules(root: Path) -> list[Path]:
    with tempfile.TemporaryDirectory() as store:
        env = {"STACFLOW_STORE": Path(store).as_uri(), "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-B", "-c", _WARM, str(root)], env=env, check=True,
                             capture_output=True, text=True, timeout=300).stdout
    return [Path(f) for f in json.loads(out.strip().splitlines()[-1])]


def add_bytecode(zips: list[Path]) -> int:
    """Compile the cold-start modules of ``zips[0]`` and append their .pyc to every zip; how many."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(zips[0]) as zf:
            present = set(zf.namelist())  # some wheels ship a few .pyc of their own
            zf.extractall(root)
        compiled = []
        for source in cold_start_modules(root):
            target = Path(str(py_compile.compile(str(source), doraise=True,
                                                 invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)))
            name = target.relative_to(root).as_posix()
            if name not in present:
                compiled.append(name)
        for path in zips:
            with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
                for name in sorted(compiled):
                    zf.write(root / name, name)
    return len(compiled)


def main(argv: list[str] | None = None) -> int:
    zips = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not zips:
        raise SystemExit(__doc__)
    print(f"added bytecode of {add_bytecode(zips)} cold-start modules to {len(zips)} zip(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
