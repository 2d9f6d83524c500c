"""Benchmark subprocesses: kbcstorage (the Python SAPI client) and the raw limit (minimal requests + boto3).

    python benchmarks/workers.py <kind> '<json arguments>'

Each kind does one operation end to end and exits; the parent measures wall time and peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RAW_THREADS = 8
CHUNK = 1024 * 1024


# kbcstorage ------------------------------------------------------------------------------------------------------------
def kbc_export(a: dict) -> None:
    from kbcstorage.client import Client

    Path(a["out_dir"]).mkdir(parents=True, exist_ok=True)
    Client(a["url"], a["token"]).tables.export_to_file(a["table_id"], a["out_dir"])


def kbc_import(a: dict) -> None:
    from kbcstorage.client import Client

    Client(a["url"], a["token"]).tables.create(a["bucket"], a["name"], a["csv"], primary_key=a.get("primary_key"))


def kbc_sync(a: dict) -> None:
    """What a kbcstorage user writes: export to a merged CSV, then create the table in the destination."""
    from kbcstorage.client import Client

    Path(a["out_dir"]).mkdir(parents=True, exist_ok=True)
    path = Client(a["url"], a["token"]).tables.export_to_file(a["table_id"], a["out_dir"])
    Client(a["dst_url"], a["dst_token"]).tables.create(a["bucket"], a["name"], path, primary_key=a.get("primary_key"))


# raw limit -------------------------------------------------------------------------------------------------------------
class Api:
    def __init__(self, url: str, token: str, poll: dict | None = None):
        import requests

        self.base = url.rstrip("/") + "/v2/storage/"
        self.session = requests.Session()
        self.session.headers["X-StorageApi-Token"] = token
        self.poll = poll or {"first": 0.05, "factor": 1.0, "floor": 0.05, "elapsed_share": 0.0, "cap": 0.05}

    def get(self, path: str, **params) -> dict:
        response = self.session.get(self.base + path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> dict:
        response = self.session.post(self.base + path, json=body)
        response.raise_for_status()
        return response.json()

    def wait(self, job: dict) -> dict:
        """Poll on the component's schedule (``poll``: the fields of storage_api.jobs.PollPolicy, passed in by the
        benchmark so this process imports nothing of the component): waiting for a job is not part of the
        transfer being measured, so both wait alike."""
        p, delay, started = self.poll, None, time.monotonic()
        while job["status"] not in ("success", "error"):
            if delay is None:
                delay = p["first"]
            else:
                bound = max(p["floor"], p["elapsed_share"] * (time.monotonic() - started))
                delay = max(p["first"], min(delay * p["factor"], bound, p["cap"]))
            time.sleep(delay)
            job = self.get(f"jobs/{job['id']}")
        if job["status"] == "error":
            raise RuntimeError(f"job {job['id']} failed: {job.get('error')}")
        return job


def _s3(credentials: dict, region: str | None):
    import boto3

    return boto3.client(
        "s3",
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials.get("SessionToken"),
    )


def _export_file(api: Api, a: dict) -> dict:
    body = {"gzip": True}
    if a.get("columns"):
        body["columns"] = ",".join(a["columns"])
    job = api.wait(api.post(f"tables/{a['table_id']}/export-async", body))
    return api.get(f"files/{job['results']['file']['id']}", federationToken=1)


def _entries(s3, file: dict) -> list[tuple[str, str]]:
    bucket, key = file["s3Path"]["bucket"], file["s3Path"]["key"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key + "manifest")["Body"].read())
    return [tuple(e["url"][len("s3://") :].split("/", 1)) for e in manifest["entries"]]


def raw_export(a: dict) -> None:
    """Export job + every slice streamed from S3 into nothing, in parallel."""
    api = Api(a["url"], a["token"], a.get("poll"))
    file = _export_file(api, a)
    s3 = _s3(file["credentials"], file.get("region"))

    def drain(entry: tuple[str, str]) -> int:
        body = s3.get_object(Bucket=entry[0], Key=entry[1])["Body"]
        total = 0
        while chunk := body.read(CHUNK):
            total += len(chunk)
        return total

    with ThreadPoolExecutor(RAW_THREADS) as pool:
        total = sum(pool.map(drain, _entries(s3, file)))
    print(json.dumps({"bytes": total}))


def _prepare_upload(api: Api, name: str, *, sliced: bool = False) -> tuple[dict, object, dict]:
    prepared = api.post("files/prepare", {"name": name, "federationToken": True, "isSliced": sliced})
    params = prepared["uploadParams"]
    extra = {"ACL": params.get("acl") or "private"}
    if params.get("x-amz-server-side-encryption"):
        extra["ServerSideEncryption"] = params["x-amz-server-side-encryption"]
    return prepared, _s3(params["credentials"], prepared.get("region")), extra


def raw_import(a: dict) -> None:
    """The bytes as they are (boto3 upload_file with its defaults) + tables-async."""
    api = Api(a["url"], a["token"], a.get("poll"))
    path = Path(a["file"])
    prepared, s3, extra = _prepare_upload(api, path.name)
    params = prepared["uploadParams"]
    s3.upload_file(str(path), params["bucket"], params["key"], ExtraArgs=extra)
    body = {"name": a["name"], "dataFileId": prepared["id"]}
    if a.get("primary_key"):
        body["primaryKey"] = ",".join(a["primary_key"])
    api.wait(api.post(f"buckets/{a['bucket']}/tables-async", body))


def raw_sync(a: dict) -> None:
    """Export job, slices piped S3 -> S3 in parallel, table created from a header file, load with columns."""
    src = Api(a["url"], a["token"], a.get("poll"))
    dst = Api(a["dst_url"], a["dst_token"], a.get("poll"))
    file = _export_file(src, a)
    s3_in = _s3(file["credentials"], file.get("region"))
    prepared, s3_out, extra = _prepare_upload(dst, "data.csv.gz", sliced=True)
    bucket, key = prepared["uploadParams"]["bucket"], prepared["uploadParams"]["key"]
    entries = _entries(s3_in, file)
    names = [f"part_{i:05d}.gz" for i in range(len(entries))]

    def pipe(item) -> None:
        entry, name = item
        body = s3_in.get_object(Bucket=entry[0], Key=entry[1])["Body"]
        s3_out.upload_fileobj(body, bucket, key + name, ExtraArgs=extra)

    with ThreadPoolExecutor(RAW_THREADS) as pool:
        list(pool.map(pipe, zip(entries, names)))
    manifest = {"entries": [{"url": f"s3://{bucket}/{key}{n}", "mandatory": True} for n in names]}
    s3_out.put_object(Bucket=bucket, Key=key + "manifest", Body=json.dumps(manifest).encode(), **extra)

    header, s3_h, extra_h = _prepare_upload(dst, "header.csv")
    hp = header["uploadParams"]
    s3_h.put_object(Bucket=hp["bucket"], Key=hp["key"], Body=(",".join(a["columns"]) + "\n").encode(), **extra_h)
    body = {"name": a["name"], "dataFileId": header["id"]}
    if a.get("primary_key"):
        body["primaryKey"] = ",".join(a["primary_key"])
    dst.wait(dst.post(f"buckets/{a['bucket']}/tables-async", body))
    table = f"{a['bucket']}.{a['name']}"
    dst.wait(dst.post(f"tables/{table}/import-async", {"dataFileId": prepared["id"], "columns": a["columns"]}))


KINDS = {
    "kbc-export": kbc_export,
    "kbc-import": kbc_import,
    "kbc-sync": kbc_sync,
    "raw-export": raw_export,
    "raw-import": raw_import,
    "raw-sync": raw_sync,
}

if __name__ == "__main__":
    KINDS[sys.argv[1]](json.loads(sys.argv[2]))
