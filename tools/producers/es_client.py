"""The official Elasticsearch 8 client, as a log shipper or exporter uses it, against an
Elasticsearch-compatible endpoint: `info`, one `bulk` and one `index`, with an API key. Runs in
the producers' venv; the client refuses a server without `X-Elastic-Product`, so finishing at
all is part of the check.

    es_client.py URL TOKEN OPERATIONS_JSON DOCUMENT_JSON   prints the three answers as JSON
"""

import json
import sys

from elasticsearch import Elasticsearch


def main() -> None:
    url, token, operations, document = sys.argv[1:5]
    client = Elasticsearch(url, api_key=token, request_timeout=30)
    info = client.info()
    bulk = client.bulk(operations=json.loads(operations))
    index = client.index(index="flywheel", document=json.loads(document))
    print(json.dumps({"info": info.body, "bulk": bulk.body, "index": index.body}))


if __name__ == "__main__":
    main()
