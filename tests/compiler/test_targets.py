"""MCU profiles: bundled files, user files, size overrides, clear errors."""
import pytest

from mcuforge.compiler.targets import list_targets, load_target, parse_size
from mcuforge.errors import UsageError


def test_bundled_profiles():
    names = {t.name for t in list_targets()}
    assert {"rp2040", "stm32f446re", "nrf52840", "stm32f746", "cortex-m55", "esp32s3", "host"} <= names
    f446 = load_target("stm32f446re")
    assert (f446.sram, f446.flash, f446.fpu, f446.dsp) == (128 * 1024, 512 * 1024, True, True)
    assert load_target("rp2040").sram == 264 * 1024 and not load_target("rp2040").fpu


@pytest.mark.parametrize("text, n", [("96K", 98304), ("2M", 2097152), ("512kb", 524288), ("1000", 1000), (7, 7)])
def test_sizes(text, n):
    assert parse_size(text) == n


def test_overrides_and_user_profile(tmp_path):
    t = load_target("stm32f746").with_sizes(sram="96K")
    assert t.sram == 98304 and t.flash == 1024 * 1024
    p = tmp_path / "myboard.toml"
    p.write_text('description = "mine"\ncore = "cortex-m33"\nclock_mhz = 64\nsram = "64K"\nflash = "256K"\n')
    assert load_target(str(p)).name == "myboard"


def test_errors():
    with pytest.raises(UsageError, match="unknown target 'z80'") as e:
        load_target("z80")
    assert "stm32f746" in e.value.hint
    with pytest.raises(UsageError, match="cannot read size"):
        parse_size("lots")
    with pytest.raises(UsageError, match="not a valid profile"):
        bad = __import__("pathlib").Path("/tmp/mcuforge_bad_target.toml")
        bad.write_text("core = 3\n")
        load_target(str(bad))
