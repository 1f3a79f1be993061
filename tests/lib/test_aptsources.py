from lib.aptsources import first_debian_uri


def test_reads_deb822_and_one_line_sources_and_skips_other_archives(tmp_path):
    (tmp_path / "a.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/raspbian\nSuites: bookworm\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    (tmp_path / "b.list").write_text(
        "deb [arch=armhf] https://other.example/debian bookworm main\n")
    assert first_debian_uri([str(tmp_path / "*.sources")]) == "http://mirror.example/debian"
    assert first_debian_uri([str(tmp_path / "*.list")]) == "https://other.example/debian"
    assert first_debian_uri([str(tmp_path / "none*")]) == ""
