"""`photoseek serve` settings: keys before listening beyond localhost, key rules, topology choice."""

from __future__ import annotations

import pytest

from photoseek.serving.auth import KeyCheck, digest, is_loopback, load_keys, peer_is_loopback
from photoseek.serving.service import ServeRequest, app_args


def test_listening_beyond_localhost_requires_keys(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("PHOTOSEEK_API_KEYS", raising=False)
    with pytest.raises(ValueError, match="API keys"):
        app_args(ServeRequest(model=str(tiny_model_dir), store=str(tmp_path), host="0.0.0.0"), "admin")
    args = app_args(ServeRequest(model=str(tiny_model_dir), store=str(tmp_path)), "admin")
    assert args.key_digests == [] and args.fused  # 127.0.0.1 without keys is allowed
    monkeypatch.setenv("PHOTOSEEK_API_KEYS", "k" * 20 + ",second-key-0123456789")
    args = app_args(ServeRequest(model=str(tiny_model_dir), store=str(tmp_path), host="0.0.0.0"), "admin")
    assert args.key_digests == [digest("k" * 20), digest("second-key-0123456789")]
    assert app_args(ServeRequest(model=str(tiny_model_dir), qdrant_url="http://q:6333"), "admin").fused is False


def test_key_rules(tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        load_keys(env={"PHOTOSEEK_API_KEYS": "short"})
    f = tmp_path / "keys"
    f.write_text("# ops team\nabcdefghijklmnopqrstuvwxyz\n\n")
    assert load_keys(str(f)) == ["abcdefghijklmnopqrstuvwxyz"]
    check = KeyCheck([digest("abcdefghijklmnopqrstuvwxyz")], link_secret="s")
    check.check_header("Bearer abcdefghijklmnopqrstuvwxyz")
    for bad in (None, "", "Basic abc", "Bearer", "Bearer abcdefghijklmnopqrstuvwxyZ"):
        with pytest.raises(PermissionError):
            check.check_header(bad)
    url = check.thumbnail_url("id-1", 256, now=1000.0)
    expires, sig = int(url.split("expires=")[1].split("&")[0]), url.split("sig=")[1]
    assert check.check_link("id-1", 256, expires, sig, now=1000.0)
    assert not check.check_link("id-2", 256, expires, sig, now=1000.0)
    assert not check.check_link("id-1", 256, expires, sig, now=expires + 1.0)  # expired
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")


def test_grpc_peer_addresses():
    assert peer_is_loopback("ipv4:127.0.0.1:50312") and peer_is_loopback("ipv6:[::1]:50312")
    assert peer_is_loopback("unix:/tmp/socket")
    for outside in ("ipv4:192.0.2.2:50312", "ipv6:[2001:db8::1]:443", "ipv4:10.0.0.1:1", "", None, "garbage"):
        assert not peer_is_loopback(outside)
