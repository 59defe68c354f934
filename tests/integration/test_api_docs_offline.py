"""The gateway's /docs works without the internet: the page loads Swagger UI from the gateway itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from test_devstack import PROBLEM_JSON, _gateway_client

# What each kind of asset must be served as, for a browser to use it (nosniff or not).
CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
# A quoted path or URL in the inline script: its config names the document and nothing else may load.
QUOTED_URL = re.compile(r"""["'`]((?:[a-z][a-z0-9+.-]*:)?//[^"'`]*|/[^"'`\s]*)["'`]""", re.IGNORECASE)


class _Assets(HTMLParser):
    """The URLs a page makes a browser fetch: script src, link href, and those quoted in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = True
            if found.get("src"):
                self.urls.append(found["src"] or "")
        elif tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls += [url for url in QUOTED_URL.findall(data) if url != "/openapi.json"]


async def test_the_docs_page_loads_swagger_ui_from_the_gateway_alone() -> None:
    async with _gateway_client({}) as gateway:
        page = await gateway.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        parser = _Assets()
        parser.feed(page.text)
        urls = [urljoin(str(page.url), url) for url in parser.urls]
        origin = urlsplit(str(page.url))[:2]  # scheme and host
        assets = {url: await gateway.get(url) for url in urls if urlsplit(url)[:2] == origin}

    assert not re.search(r"https?://", page.text, re.IGNORECASE)
    assert "/openapi.json" in page.text
    assert set(assets) == set(urls), "every asset is the gateway's own"
    kinds = {urlsplit(url).path.rsplit(".", 1)[-1] for url in urls}
    assert {"css", "js"} <= kinds, urls
    for url, asset in assets.items():
        suffix = "." + urlsplit(url).path.rsplit(".", 1)[-1]
        assert asset.status_code == 200, (url, asset.status_code)
        assert asset.content, url
        assert asset.headers["content-type"].split(";")[0] == CONTENT_TYPES[suffix], url
    bundle = next(asset for url, asset in assets.items() if url.endswith("swagger-ui-bundle.js"))
    assert b"SwaggerUIBundle" in bundle.content  # the script the page's inline one calls


async def test_only_the_pages_own_assets_are_served() -> None:
    async with _gateway_client({}) as gateway:
        other = await gateway.get("/docs/assets/swagger-editor-bundle.js")
        climbing = await gateway.get("/docs/assets/..%2F..%2Fcore.py")

    for response in (other, climbing):
        assert response.status_code in (400, 404), response.text
        assert response.headers["content-type"] == PROBLEM_JSON
