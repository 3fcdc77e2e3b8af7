"""gcp-storage-emulator with the generation semantics of real GCS that tensorstore (Orbax's
array writer) relies on; run by tests/gcs_emulator.py.

    python tests/gcs_emulator_server.py PORT BUCKET

The emulator sends no `x-goog-generation` header with object data and ignores the
`ifGenerationMatch` / `ifGenerationNotMatch` conditions. tensorstore's OCDBT manifest is a
read-modify-write guarded by those conditions (GCS's documented object preconditions), and
without them it fails now and then with "Malformed StorageGeneration". Here downloads carry
the header and answer a condition as GCS does (304 when unchanged, 412 when a condition
fails), and media uploads (tensorstore's) honour `ifGenerationMatch` (0: must not exist).
"""

import sys
from http import HTTPStatus

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.server import create_server


def _current(storage, bucket, name):
    try:
        return storage.get_file_obj(bucket, name)["generation"]
    except NotFound:
        return "0"


def _query(request, key):
    values = request.query.get(key)
    return values[0] if values else None


def _download(original):
    def download(request, response, storage, *args, **kwargs):
        gen = _current(storage, request.params["bucket_name"], request.params["object_id"])
        match, not_match = _query(request, "ifGenerationMatch"), _query(request, "ifGenerationNotMatch")
        if gen != "0" and not_match is not None and not_match == gen:
            response.status = HTTPStatus.NOT_MODIFIED
            return None
        if gen != "0" and match is not None and match != gen:
            response.status = HTTPStatus.PRECONDITION_FAILED
            return None
        if gen != "0":
            response["x-goog-generation"] = gen
            response["x-goog-metageneration"] = "1"
        return original(request, response, storage, *args, **kwargs)

    return download


def _media_upload(original):
    def upload(request, response, storage):
        match = _query(request, "ifGenerationMatch")
        if match is not None:
            gen = _current(storage, request.params["bucket_name"], request.query["name"][0])
            if match != gen:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "Precondition Failed"}})
                return None
        return original(request, response, storage)

    return upload


def main(port, bucket):
    objects.download = _download(objects.download)  # `get ... alt=media` calls it by name
    objects._media_upload = _media_upload(objects._media_upload)
    create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket).run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
