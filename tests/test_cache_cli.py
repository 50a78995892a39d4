"""`anfe cache merge` (e.g. a laptop's cache into the shared one) and `cache info`, on real photos."""

from __future__ import annotations

from click.testing import CliRunner

from anfe.faces.cache import AnalysisCache
from anfe.cli.app import cli
from anfe.core.config import AnalysisParams


def test_caches_merge_into_one(utkface_rows, tmp_path):
    folder = tmp_path / "photos" / "male"
    folder.mkdir(parents=True)
    (tmp_path / "photos" / "female").mkdir()
    rows = [r for r in utkface_rows if r["gender"] == "male"][:3] + [r for r in utkface_rows if r["gender"] == "female"][:3]
    for row in rows:
        target = tmp_path / "photos" / row["gender"] / row["path"].rsplit("/", 1)[-1]
        target.write_bytes(open(row["path"], "rb").read())
    runner = CliRunner()
    shards = []
    for gender in ("male", "female"):  # two machines, each analysing its part into its own cache
        shard = tmp_path / f"{gender}.sqlite"
        part = tmp_path / f"part-{gender}" / gender
        part.mkdir(parents=True)
        for photo in (tmp_path / "photos" / gender).iterdir():
            (part / photo.name).write_bytes(photo.read_bytes())
        result = runner.invoke(cli, ["analyze", str(part.parent), "--cache", str(shard), "--workers", "1"])
        assert result.exit_code == 0, result.output
        assert "3 images: 0 from cache, 3 analysed now" in result.output
        shards.append(shard)
    joined = tmp_path / "joined.sqlite"
    result = runner.invoke(cli, ["cache", "merge", str(joined), *map(str, shards)])
    assert result.exit_code == 0, result.output
    assert "3 analyses added" in result.output
    assert len(AnalysisCache(joined, AnalysisParams().cache_key)) == 6
    again = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--cache", str(joined)])
    assert "6 images: 6 from cache, 0 analysed now" in again.output
    info = runner.invoke(cli, ["cache", "info", str(joined)])
    assert f"{AnalysisParams().cache_key}: 6 images" in info.output


def test_shard_is_retired_and_a_bad_cache_file_is_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", str(tmp_path), "--shard", "1/2"])
    assert result.exit_code == 2 and "No such option '--shard'" in result.output
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    result = runner.invoke(cli, ["cache", "merge", str(tmp_path / "t.sqlite"), str(junk)])
    assert result.exit_code == 1 and "is not an analysis cache" in result.output
