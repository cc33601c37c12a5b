"""A writer of document updates to be killed (tests/storage/test_documents_crash.py).

    python documents_worker.py INDEX_DIR START OP

OP ``update``: step i sets every live document's metadata to ``{"n": <its n>, "v": i}`` (merge) and its stored
text to ``"version i of <id> v<i>w"``, in one update. OP ``delete``: step i deletes the documents with ``n = i`` by
filter. "ok i" is printed after step i's commit returned.
"""

import sys

import gingham


def main() -> None:
    path, start, op = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    index = gingham.Index.open(path)
    print("ready", flush=True)
    i = start
    while True:
        if op == "update":
            ids = index.ids()
            index.update(ids, metadata=[{"v": i}] * len(ids), texts=[f"version {i} of {d} v{i}w" for d in ids])
        else:
            index.delete_where("n = ?", [i])
        print(f"ok {i}", flush=True)
        i += 1


if __name__ == "__main__":
    main()
