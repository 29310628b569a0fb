import pytest

from medisys_app.migrate import Migration, MigrationError, discover, newer_than_release, pending


def write(tmp_path, files):
    for name, sql in files.items():
        (tmp_path / name).write_text(sql)
    return tmp_path


def test_migrations_are_found_in_version_order(tmp_path):
    found = discover(write(tmp_path, {"0002_b.sql": "B", "0001_a.sql": "A", "README.md": "x"}))
    assert [(m.version, m.name, m.sql) for m in found] == [(1, "a", "A"), (2, "b", "B")]


@pytest.mark.parametrize("name", ["1_a.sql", "0001-a.sql", "0001_A.sql"])
def test_badly_named_migration_is_refused_with_the_pattern(tmp_path, name):
    with pytest.raises(MigrationError, match="NNNN_lowercase_name.sql"):
        discover(write(tmp_path, {name: "x"}))


def test_two_migrations_with_one_version_are_refused(tmp_path):
    with pytest.raises(MigrationError, match="version 1 is also"):
        discover(write(tmp_path, {"0001_a.sql": "A", "0001_b.sql": "B"}))


def test_only_unapplied_migrations_are_pending():
    a, b = Migration(1, "a", "A"), Migration(2, "b", "B")
    assert pending([a, b], {1: ("a", a.checksum)}) == [b]
    assert pending([a, b], {1: ("a", a.checksum), 2: ("b", b.checksum)}) == []


def test_an_applied_migration_whose_text_changed_is_refused():
    a = Migration(1, "a", "A")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        pending([a], {1: ("a", Migration(1, "a", "edited").checksum)})


def test_a_database_ahead_of_the_release_is_a_rollback_not_an_error():
    a = Migration(1, "a", "A")
    assert newer_than_release([a], {1: ("a", a.checksum), 2: ("b", "x")}) == ["0002_b"]
    assert pending([a], {1: ("a", a.checksum), 2: ("b", "x")}) == []
