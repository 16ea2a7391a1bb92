"""Write the JSON Schemas of manifest.json and of a receipt to docs/schema/ (generated from
fgbg.readers.schema; tests/test_schema.py fails when the published files are stale)."""

import json
from pathlib import Path

from fgbg.readers.schema import json_schemas

OUT = Path(__file__).resolve().parents[1] / "docs" / "schema"

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        path = OUT / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
