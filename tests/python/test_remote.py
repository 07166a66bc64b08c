"""remote's choices made before connecting: which SSH ciphers to offer."""
from criu_lab import remote

ALL = {"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
       "aes128-ctr", "aes192-ctr", "aes256-ctr", "3des-cbc"}


def test_aes_gcm_first_where_the_cpu_has_aes_instructions():
    assert remote.cipher_order({"sse2", "aes", "avx2"}, ALL)[:3] == [
        "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"]


def test_chacha20_first_without_them_and_only_what_this_ssh_knows():
    assert remote.cipher_order({"sse2"}, ALL)[0] == "chacha20-poly1305@openssh.com"
    assert remote.cipher_order({"aes"}, {"aes256-gcm@openssh.com", "aes128-ctr"}) == ["aes256-gcm@openssh.com",
                                                                                      "aes128-ctr"]
    assert "3des-cbc" not in remote.cipher_order({"aes"}, ALL)  # nothing OpenSSH leaves out by default
    assert remote.cipher_order({"aes"}, set()) == []  # ssh -Q failed: ssh's own list


def test_cpu_flags_of_x86_and_arm64(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 aes avx\nbugs\t\t: spectre_v1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd aes pmull sha1\n")
    assert "aes" in remote.cpu_flags(str(x86)) and "spectre_v1" not in remote.cpu_flags(str(x86))
    assert "aes" in remote.cpu_flags(str(arm))
    assert remote.cpu_flags(str(tmp_path / "none")) == set()
