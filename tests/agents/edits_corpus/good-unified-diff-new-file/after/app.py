"""A tiny service."""

import os


class Store:
    def __init__(self, root):
        self.root = root

    def get(self, key):
        path = os.path.join(self.root, key)
        with open(path) as fh:
            return fh.read()

    def put(self, key, value):
        path = os.path.join(self.root, key)
        with open(path, "w") as fh:
            fh.write(value)


def main():
    store = Store("/tmp")
    print(store.get("x"))
