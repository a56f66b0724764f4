"""Driving STAC Browser (``/browser/``) in the browser tests and the benchmark: offline map tiles,
its OpenLayers maps (footprints, lon/lat -> pixel), its search form."""
from __future__ import annotations

import base64
from typing import Any

from tests.helpers.paths import TOOLS

# OpenStreetMap's tiles are the map background; offline they cannot load. Each tile request gets a
# transparent PNG instead, so the console shows only the app's own errors (footprints draw on white).
TILES = "https://tile.openstreetmap.org/**"
_BLANK_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")

# The queryables' geometry refers to GeoJSON's published schema (as stac-fastapi's do), which STAC
# Browser fetches for its filter form: answered from the shared offline schema mirror.
SCHEMAS = TOOLS.parent / "schemas"
GEOJSON_SCHEMAS = "https://geojson.org/schema/**"

# Console errors that cannot be avoided offline, each with its reason: none once tiles and schemas
# are answered locally (add entries here only with a reason).
ALLOWED_ERRORS: tuple[str, ...] = ()

# The Vue component (Vue 2 keeps it on its element) that owns the OpenLayers map around ``selector``.
_MAP_VM = """(selector) => {
  const viewport = document.querySelector(selector);
  for (let e = viewport; e; e = e.parentElement) { if (e.__vue__ && e.__vue__.map) return e.__vue__; }
  return null;
}"""
_PIXEL = """([selector, lon, lat]) => {
  const vm = (%s)(selector);
  const R = 6378137, x = R * lon * Math.PI / 180, y = R * Math.log(Math.tan(Math.PI / 4 + lat * Math.PI / 360));
  const px = vm.map.getPixelFromCoordinate([x, y]);
  const box = vm.map.getViewport().getBoundingClientRect();
  return [box.left + px[0], box.top + px[1]];
}""" % _MAP_VM
# Features drawn on the map's vector layers (the item's footprint), as [lon/lat bbox] in map units.
_FEATURES = """(selector) => {
  const vm = (%s)(selector);
  let n = 0;
  for (const layer of vm.map.getAllLayers()) {
    const source = layer.getSource && layer.getSource();
    if (source && source.getFeatures) n += source.getFeatures().length;
  }
  return n;
}""" % _MAP_VM


def offline_web(page: Any) -> None:
    """What the page would fetch from the internet: blank map tiles, GeoJSON schemas from the mirror."""
    page.route(TILES, lambda route: route.fulfill(status=200, content_type="image/png", body=_BLANK_PNG))
    page.route(GEOJSON_SCHEMAS, _schema)


def _schema(route: Any) -> None:
    path = SCHEMAS / route.request.url.split("://", 1)[1]
    if path.is_file() and SCHEMAS.resolve() in path.resolve().parents:
        route.fulfill(status=200, content_type="application/json", body=path.read_bytes(),
                      headers={"Access-Control-Allow-Origin": "*"})
    else:
        route.fulfill(status=404, body=b"not in the offline mirror")


def map_features(page: Any, selector: str = ".ol-viewport") -> int:
    return int(page.evaluate(_FEATURES, selector))


def drag_bbox(page: Any, west: float, south: float, east: float, north: float,
              selector: str = ".filter-bbox .ol-viewport") -> None:
    """Draw a bounding box on the search form's map as a user does (shift + drag)."""
    x0, y0 = page.evaluate(_PIXEL, [selector, west, north])
    x1, y1 = page.evaluate(_PIXEL, [selector, east, south])
    page.keyboard.down("Shift")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")


def add_search_term(page: Any, term: str) -> None:
    page.click(".filter-freetext .multiselect")
    page.keyboard.type(term)
    page.keyboard.press("Enter")
