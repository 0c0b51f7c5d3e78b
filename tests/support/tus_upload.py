"""Uploads a file to Coffer with tuspy, the tus project's Python client, for tests/api/resumable*.rs.

Prints one JSON object: the upload's URL and the offset reached. The server's self-signed
certificate is trusted through REQUESTS_CA_BUNDLE (set by the test).
"""

import argparse
import hashlib
import json
import sys

from tusclient import client
from tusclient.uploader import Uploader


class Sha256Uploader(Uploader):
    """tuspy sends sha1 checksums by default; Coffer checks sha256."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True, help="https://host:port/api/v1/uploads")
    parser.add_argument("--token", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--chunk-size", type=int, default=1 << 20)
    parser.add_argument("--metadata", action="append", default=[], help="key=value")
    parser.add_argument("--checksum", action="store_true", help="send Upload-Checksum (sha256)")
    parser.add_argument("--url", help="resume this upload instead of creating one")
    parser.add_argument("--stop-at", type=int, help="stop once this offset is reached")
    args = parser.parse_args()

    tus = client.TusClient(args.endpoint, headers={"Authorization": f"Bearer {args.token}"})
    metadata = dict(pair.split("=", 1) for pair in args.metadata)
    uploader = Sha256Uploader(
        file_path=args.file,
        client=tus,
        url=args.url,
        chunk_size=args.chunk_size,
        metadata=metadata,
        upload_checksum=args.checksum,
        retries=2,
        retry_delay=0.5,
    )
    try:
        uploader.upload(stop_at=args.stop_at)
    except Exception as error:  # the test reads the reason
        status = getattr(error, "status_code", None)
        print(json.dumps({"url": uploader.url, "offset": uploader.offset, "error": str(error), "status": status}))
        sys.exit(1)
    print(json.dumps({"url": uploader.url, "offset": uploader.offset}))


if __name__ == "__main__":
    main()
