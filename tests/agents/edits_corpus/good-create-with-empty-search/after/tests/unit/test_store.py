from app import Store


def test_put_then_get(tmp_path):
    store = Store(tmp_path)
    store.put("k", "v")
    assert store.get("k") == "v"
