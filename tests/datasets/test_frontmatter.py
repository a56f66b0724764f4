"""README front matter -> item fields: every field mapped, and every bad input costs only its field."""
from __future__ import annotations

import logging
from typing import Any

import pytest

from chalicelib.datasets import frontmatter
from chalicelib.datasets.items import WARNINGS, build, build_items
from chalicelib.stac.items import normalize
from stac_offline import validate_object
from tests.helpers.dvc_repos import REMOTE_URL, DictRemote, dvc_config, dvc_file, push, snapshot

FULL = """---
title: Sentinel-2 tiles
description: Cloud-free tiles over the Alps.
license: apache-2.0 OR mit
license-url: https://example.org/license
extent:
  spatial: [5.9, 45.8, 10.5, 47.8]
  temporal: ["2021-03-01", "2021-09-30T12:00:00+02:00"]
providers:
  - name: ESA
    description: Copernicus
    roles: [licensor, producer]
    url: https://esa.int
keywords: [sentinel-2, alps]
related:
  dataset: https://gitlab.example/eo/raw-scenes
  ai-model: [https://gitlab.example/eo/segmenter]
links:
  - href: https://example.org/paper
    rel: cite-as
    title: The paper
    type: text/html
  - href: docs/usage.md
    title: Usage
assets:
  - "*.csv"
  - path: data/tile.tif
    key: tile
    title: "Tile {key}"
    roles: [data, visual]
    eo:bands: [{name: B04}]
  - href: https://example.org/extra.zip
    key: extra
    title: Extra archive
preview: images/preview.png
eo:
  cloud_cover: 3.5
label:
  type: vector
  tasks: [segmentation]
sci:
  doi: 10.5281/zenodo.1234
sar:
  instrument_mode: IW
view:off_nadir: 2
sharinghub:
  stars: 3
extensions:
  my-ext: https://example.org/my-ext/v1.0.0/schema.json
my-ext:
  level: 2
stacflow:
  publish_default_branch: true
---
# Sentinel-2 tiles

Body text.
"""

MISSING_FROM_MIRROR = ("label/v1.0.1", "sar/v1.0.0", "my-ext")  # schemas the offline mirror does not hold


def schema_errors(item: dict[str, Any]) -> list[str]:
    """validate-stac's errors, except for extension schemas the offline mirror does not hold."""
    return [e for e in validate_object(item, max_errors=20)
            if not ("missing from the offline mirror" in e and any(m in e for m in MISSING_FROM_MIRROR))]


def one_item(readme: str, **kw: Any) -> dict[str, Any]:
    items = build_items(snapshot({"README.md": readme.encode()}, **kw), DictRemote({}))
    assert len(items) == 1
    return items[0]


def warnings_of(readme: str) -> list[str]:
    return build(snapshot({"README.md": readme.encode()}), DictRemote({})).warnings


def test_every_field_is_mapped(remote_store: Any, remote: Any) -> None:
    data = b"a,b\n1,2\n"
    push(remote_store, data)
    files = {"README.md": FULL.encode(), "data/labels.csv.dvc": dvc_file("labels.csv", data),
             "data/tile.tif.dvc": dvc_file("tile.tif", b"TIFF"), ".dvc/config": dvc_config(REMOTE_URL)}
    result = build(snapshot(files, tree=("README.md", "notes.csv", "data/labels.csv.dvc")), remote)
    assert result.warnings == [], result.warnings
    item = result.items[0]
    p = item["properties"]
    assert p["title"] == "Sentinel-2 tiles (v1)"
    assert p["description"] == "Cloud-free tiles over the Alps."
    assert p["license"] == "other"  # STAC's license is one SPDX id: an expression is "other" and links
    assert p["stacflow:license_expression"] == "Apache-2.0 OR MIT"
    assert {"rel": "license", "href": "https://example.org/license", "title": "License"} in item["links"]
    assert item["bbox"] == [5.9, 45.8, 10.5, 47.8]
    assert item["geometry"]["type"] == "Polygon"
    assert (p["start_datetime"], p["end_datetime"]) == ("2021-03-01T00:00:00Z", "2021-09-30T10:00:00Z")
    assert p["datetime"] == p["start_datetime"]
    assert p["providers"][0] == {"name": "ESA", "description": "Copernicus", "roles": ["licensor", "producer"],
                                 "url": "https://esa.int"}
    assert p["providers"][1]["roles"] == ["host"]  # GitLab hosts it
    assert p["keywords"] == ["sentinel-2", "alps"]
    derived = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert [(d["href"], d["title"]) for d in derived] == [
        ("https://gitlab.example/eo/raw-scenes", "dataset: eo/raw-scenes"),
        ("https://gitlab.example/eo/segmenter", "ai-model: eo/segmenter")]
    links = {link["title"]: link for link in item["links"] if "title" in link}
    assert links["The paper"]["rel"] == "cite-as"
    assert links["The paper"]["type"] == "text/html"
    assert links["Usage"] == {"rel": "related", "href": "https://gitlab.example/eo/tiles/-/blob/v1/docs/usage.md",
                              "title": "Usage"}
    # assets: a glob over DVC outputs and repository files, a re-keyed DVC output, a fixed href
    assets = item["assets"]
    assert assets["data/labels.csv"]["stacflow:available"] is True
    assert assets["notes.csv"]["href"] == "https://gitlab.example/eo/tiles/-/raw/v1/notes.csv"
    assert assets["tile"]["title"] == "Tile tile"
    assert assets["tile"]["roles"] == ["data", "visual"]
    assert assets["tile"]["eo:bands"] == [{"name": "B04"}]
    assert assets["tile"]["stacflow:available"] is False
    assert assets["extra"] == {"href": "https://example.org/extra.zip", "type": "application/zip",
                               "title": "Extra archive", "roles": ["data"]}
    assert assets["preview"]["roles"] == ["thumbnail"]
    assert assets["preview"]["href"] == "https://gitlab.example/eo/tiles/-/raw/v1/images/preview.png"
    # extension blocks -> prefixed properties, with their schemas
    assert p["eo:cloud_cover"] == 3.5
    assert p["label:type"] == "vector"
    assert p["sar:instrument_mode"] == "IW"
    assert p["view:off_nadir"] == 2
    assert p["sharinghub:stars"] == 3
    assert p["my-ext:level"] == 2
    assert p["sci:doi"] == "10.5281/zenodo.1234"
    assert {"rel": "cite-as", "href": "https://doi.org/10.5281/zenodo.1234"} in item["links"]
    for uri in ("https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                "https://stac-extensions.github.io/label/v1.0.1/schema.json",
                "https://stac-extensions.github.io/scientific/v1.0.0/schema.json",
                "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
                "https://stac-extensions.github.io/view/v1.0.0/schema.json",
                "https://example.org/my-ext/v1.0.0/schema.json"):
        assert uri in item["stac_extensions"]
    assert p["stacflow:project"] == "eo/tiles"
    assert p["stacflow:visibility"] == "internal"
    assert normalize(item, "dataset", item["id"])[0] == item  # the catalog stores it as built
    assert WARNINGS not in p
    errors = schema_errors(item)
    assert not [e for e in errors if "label" not in e and "sar" not in e], errors


def test_the_default_branch_is_published_only_when_the_readme_opts_in() -> None:
    readme = FULL.encode()
    dev = snapshot({"README.md": readme}, ref="main", is_tag=False, tags=("v1", "v2"))
    [item] = build_items(dev, DictRemote({}))
    assert item["id"].endswith("~dev")
    assert item["properties"]["experimental"] is True
    assert item["properties"]["version"] == "main@" + dev.commit[:12]
    assert [link["href"] for link in item["links"] if link["rel"] == "latest-version"] == [
        "./" + item["id"].replace("~dev", "-v2") + ".json"]
    without = readme.replace(b"publish_default_branch: true", b"publish_default_branch: false")
    assert build_items(snapshot({"README.md": without}, ref="main", is_tag=False), DictRemote({})) == []
    assert build_items(snapshot({}, ref="main", is_tag=False), DictRemote({})) == []
    assert frontmatter.wants_default_branch(readme)
    assert not frontmatter.wants_default_branch(without)
    assert not frontmatter.wants_default_branch(None)


def test_no_topic_no_item() -> None:
    assert build_items(snapshot({"README.md": FULL.encode()}, topics=("other",)), DictRemote({})) == []


def test_without_front_matter_the_readme_body_and_project_fill_in() -> None:
    item = one_item("# Tiles\n\nJust text.\n")
    p = item["properties"]
    assert p["title"] == "tiles (v1)"
    assert p["description"] == "# Tiles\n\nJust text."
    assert item["geometry"] is None
    assert "bbox" not in item
    assert p["datetime"] == "2024-01-01T00:00:00Z"  # the tag's date
    assert "license" not in p
    assert schema_errors(item) == []
    no_readme = build_items(snapshot({}), DictRemote({}))[0]
    assert no_readme["properties"]["description"] == "GitLab description"


@pytest.mark.parametrize("spatial, bbox, kind", [
    ("[0, 0, -50, 10, 10, 100]", [0.0, 0.0, 10.0, 10.0], "Polygon"),  # 3-D: [w, s, low, e, n, high]
    ("'POLYGON((0 0, 0 2, 2 2, 2 0, 0 0))'", [0.0, 0.0, 2.0, 2.0], "Polygon"),
    ("'POINT (3 4)'", [3.0, 4.0, 3.0, 4.0], "Point"),
    ("{type: LineString, coordinates: [[0, 0], [1, 1]]}", [0.0, 0.0, 1.0, 1.0], "LineString"),
    ("'1, 2, 3, 4'", [1.0, 2.0, 3.0, 4.0], "Polygon"),
    ("[170, -10, -170, 10]", [170.0, -10.0, -170.0, 10.0], "MultiPolygon"),  # across the antimeridian
])
def test_spatial_extent_forms(spatial: str, bbox: list[float], kind: str) -> None:
    item = one_item(f"---\nextent:\n  spatial: {spatial}\n---\n")
    assert item["bbox"] == bbox
    assert item["geometry"]["type"] == kind
    assert normalize(item, "dataset", item["id"])[0] == item
    assert schema_errors(item) == []


def test_wkt_polygons_are_oriented_counter_clockwise() -> None:
    item = one_item("---\nextent:\n  spatial: 'POLYGON((0 0, 2 0, 2 2, 0 2, 0 0))'\n---\n")
    import shapely.geometry
    ring = shapely.geometry.shape(item["geometry"]).exterior
    assert ring.is_ccw


@pytest.mark.parametrize("temporal, expected", [
    ("[2020-01-01, 2020-12-31]", {"start_datetime": "2020-01-01T00:00:00Z",
                                  "end_datetime": "2020-12-31T23:59:59.999999Z", "datetime": "2020-01-01T00:00:00Z"}),
    ("[2020-01-01T10:00:00Z, null]", {"start_datetime": "2020-01-01T10:00:00Z",
                                      "end_datetime": "2024-01-01T00:00:00Z", "datetime": "2020-01-01T10:00:00Z"}),
    ("[null, 2020-06-01]", {"datetime": "2020-06-01T23:59:59.999999Z"}),
    ("[null, null]", {"datetime": "2024-01-01T00:00:00Z"}),
    ("[2020-01-01 10:00:00, null]", {"start_datetime": "2020-01-01T10:00:00Z",
                                     "end_datetime": "2024-01-01T00:00:00Z", "datetime": "2020-01-01T10:00:00Z"}),
])
def test_temporal_extent_forms(temporal: str, expected: dict[str, str]) -> None:
    p = one_item(f"---\nextent:\n  temporal: {temporal}\n---\n")["properties"]
    got = {k: p[k] for k in ("datetime", "start_datetime", "end_datetime") if k in p}
    assert got == expected


# -- bad input: published with what is valid, a warning naming the project and the field ----------------
BAD = [
    ("invalid YAML", "title: [unclosed\n", "front matter: invalid YAML"),
    ("not a mapping", "- a\n- b\n", "front matter: is a list"),
    ("bbox of 3 numbers", "extent:\n  spatial: [1, 2, 3]\n", "extent.spatial"),
    ("bbox out of range", "extent:\n  spatial: [0, 0, 200, 10]\n", "extent.spatial"),
    ("bbox south above north", "extent:\n  spatial: [0, 10, 5, 0]\n", "extent.spatial"),
    ("bad WKT", "extent:\n  spatial: 'POLYGON((0 0, 1'\n", "extent.spatial"),
    ("self-intersecting WKT", "extent:\n  spatial: 'POLYGON((0 0, 2 2, 2 0, 0 2, 0 0))'\n", "extent.spatial"),
    ("WKT out of range", "extent:\n  spatial: 'POINT (500 0)'\n", "extent.spatial"),
    ("spatial of a wrong type", "extent:\n  spatial: true\n", "extent.spatial"),
    ("temporal not a pair", "extent:\n  temporal: 2020-01-01\n", "extent.temporal"),
    ("temporal bad date", "extent:\n  temporal: [yesterday, null]\n", "extent.temporal.start"),
    ("temporal reversed", "extent:\n  temporal: [2021-01-01, 2020-01-01]\n", "extent.temporal"),
    ("open end starting after the version", "extent:\n  temporal: [2030-01-01, null]\n", "extent.temporal"),
    ("extent not a mapping", "extent: [1, 2]\n", "extent"),
    ("unknown license", "license: Foo-License-9\n", "license"),
    ("license of a wrong type", "license: [MIT]\n", "license"),
    ("title of a wrong type", "title: [a, b]\n", "title"),
    ("description of a wrong type", "description: {a: 1}\n", "description"),
    ("providers not a list", "providers: ESA\n", "providers"),
    ("provider without a name", "providers: [{url: 'https://esa.int'}]\n", "providers[0]"),
    ("provider with a bad role and url", "providers: [{name: ESA, roles: [owner], url: nope}]\n", "providers[0]"),
    ("keywords of a wrong type", "keywords: {a: 1}\n", "keywords"),
    ("keyword of a wrong type", "keywords: [ok, {a: 1}]\n", "keywords[1]"),
    ("related not a URL", "related: {dataset: not-a-url}\n", "related.dataset[0]"),
    ("links without href", "links: [{rel: related}]\n", "links[0]"),
    ("links of a wrong type", "links: https://example.org\n", "links"),
    ("link with a structural rel", "links: [{href: 'https://x.org', rel: self}]\n", "links[0]"),
    ("asset of a wrong type", "assets: [3]\n", "assets[0]"),
    ("asset without path or href", "assets: [{title: x}]\n", "assets[0]"),
    ("asset href without key", "assets: [{href: 'https://x.org/a.zip'}]\n", "assets[0]"),
    ("asset glob matching nothing", "assets: ['*.nothing']\n", "assets[0]"),
    ("asset overriding stacflow fields", "assets: [{path: '*.x', 'stacflow:available': true}]\n",
     "assets[0].stacflow:available"),
    ("extension block not a mapping", "eo: 3\n", "eo"),
    ("extension declared over a stacflow prefix", "extensions: {stacflow: 'https://x.org/s.json'}\n"
     "stacflow:project: evil\n", "extensions.stacflow"),
    ("unknown extension prefix", "foo:bar: 1\n", "foo:bar"),
    ("bad extension declaration", "extensions: {Foo: not-a-url}\n", "extensions.Foo"),
    ("bad DOI", "sci:\n  doi: 1234\n", "sci.doi"),
    ("opt-in of a wrong type", "stacflow: {publish_default_branch: 'yes'}\n", "stacflow.publish_default_branch"),
    ("unknown field", "colour: blue\n", "colour"),
]


@pytest.mark.parametrize("case, yaml, field", BAD, ids=[b[0] for b in BAD])
def test_bad_front_matter_publishes_the_rest_with_a_warning(case: str, yaml: str, field: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    kept = "description" if yaml.startswith("title:") else "title"
    broken = case in ("invalid YAML", "not a mapping")
    good = "---\n" + ("" if broken else f"{kept}: Kept\n") + yaml + "---\n# Body\n"
    with caplog.at_level(logging.WARNING, logger="chalicelib.datasets.items"):
        result = build(snapshot({"README.md": good.encode()}), DictRemote({}))
    [item] = result.items
    assert any(w.startswith(field) for w in result.warnings), result.warnings
    assert any("eo/tiles" in r.getMessage() and field in r.getMessage() for r in caplog.records)
    assert item["properties"][WARNINGS] == result.warnings
    if not broken:  # the valid fields are kept
        assert item["properties"][kept] == ("Kept (v1)" if kept == "title" else "Kept")
    assert item["properties"]["stacflow:project"] == "eo/tiles"
    if case == "unknown license" or case == "license of a wrong type":
        assert item["properties"]["license"] == "other"
    assert normalize(item, "dataset", item["id"])[0] == item
    assert schema_errors(item) == []


def test_unclosed_and_oversized_front_matter_are_ignored_with_a_warning() -> None:
    assert any(w.startswith("front matter: no closing") for w in warnings_of("---\ntitle: x\n# no end\n"))
    huge = "---\ntitle: x\npad: '" + "a" * (frontmatter.MAX_FRONT_MATTER + 10) + "'\n---\n"
    assert any("within the first" in w for w in warnings_of(huge))


def test_yaml_bombs_and_deep_nesting_cost_only_the_front_matter() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    assert any("aliases expanded" in w for w in warnings_of(f"---\n{laughs}---\n"))
    deep = "x: " + "[" * 5000 + "]" * 5000 + "\n"
    assert any(w.startswith("front matter: invalid YAML") for w in warnings_of(f"---\n{deep}---\n"))
    python_tag = "x: !!python/object/apply:os.system ['true']\n"
    assert any(w.startswith("front matter: invalid YAML") for w in warnings_of(f"---\n{python_tag}---\n"))


def test_licenses() -> None:
    assert one_item("---\nlicense: other\n---\n")["properties"]["license"] == "other"
    item = one_item("---\nlicense: cc-by-sa-4.0\n---\n")
    assert item["properties"]["license"] == "CC-BY-SA-4.0"
    assert {"rel": "license", "href": "https://spdx.org/licenses/CC-BY-SA-4.0.html", "type": "text/html",
            "title": "CC-BY-SA-4.0"} in item["links"]
    assert warnings_of("---\nlicense: other\n---\n") == []
    item = one_item("---\nlicense: gpl-2.0-or-later WITH classpath-exception-2.0 OR mit\n---\n")
    assert item["properties"]["license"] == "other"
    assert item["properties"]["stacflow:license_expression"] == "GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT"
    assert [link["href"] for link in item["links"] if link["rel"] == "license"] == [
        "https://spdx.org/licenses/GPL-2.0-or-later.html", "https://spdx.org/licenses/Classpath-exception-2.0.html",
        "https://spdx.org/licenses/MIT.html"]
    assert schema_errors(item) == []


def test_the_warnings_kept_in_the_item_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    from chalicelib.datasets.items import MAX_WARNING, MAX_WARNINGS
    fields = "".join(f"unknown{i}{'x' * 1000}: 1\n" for i in range(MAX_WARNINGS + 20))
    with caplog.at_level(logging.WARNING, logger="chalicelib.datasets.items"):
        item = one_item(f"---\ntitle: T\n{fields}---\n")
    kept = item["properties"][WARNINGS]
    assert len(kept) == MAX_WARNINGS
    assert all(len(w) <= MAX_WARNING for w in kept)
    assert len(caplog.records) == MAX_WARNINGS + 20  # the log has every one
    assert item["properties"]["title"] == "T (v1)"


def test_asset_globs_over_repository_files_may_template_their_href() -> None:
    readme = "---\nassets:\n  - glob: 'docs/*.pdf'\n    href: 'https://cdn.example/{path}'\n    key: 'doc-{path}'\n---\n"
    item = build_items(snapshot({"README.md": readme.encode()}, tree=("docs/a.pdf", "docs/b.txt")), DictRemote({}))[0]
    assert item["assets"] == {"doc-docs/a.pdf": {"href": "https://cdn.example/docs/a.pdf", "type": "application/pdf",
                                                 "title": "docs/a.pdf", "roles": ["data"]}}
