"""An AMP bus setting that has no effect where it stands is a scenario error at its key: a user who sets it
expects a change in the numbers and would otherwise get none, silently."""

from __future__ import annotations

import pytest
import yaml
from sim_helpers import scenario_dict

from vmsim.errors import ScenarioError
from vmsim.scenario import load, load_dict


def amp_bus(**options) -> dict:
    data = scenario_dict()
    data["buses"][0].update(options)
    return data


def test_masked_notifications_with_in_band_notification_are_rejected_at_their_line(tmp_path):
    """Masking applies to amp-2026's out-of-band notification words; in-band notification has none."""
    path = tmp_path / "masked.yaml"
    path.write_text(yaml.safe_dump(amp_bus(masked_notifications=True), sort_keys=False))
    with pytest.raises(ScenarioError) as caught:
        load(path)
    [problem] = caught.value.problems
    line = next(number for number, text in enumerate(path.read_text().splitlines(), 1)
                if "masked_notifications" in text)
    assert problem.startswith(f"{path}:{line}: buses[0].masked_notifications: masks amp-2026's out-of-band")


def test_masked_notifications_with_out_of_band_notification_are_accepted():
    assert load_dict(amp_bus(notify="out-of-band", masked_notifications=True)).buses[0].masked_notifications


def test_a_doorbell_back_to_the_driver_on_a_polling_bus_is_rejected():
    """A polling bus rings no doorbell at all, so naming a second one for the way back changes nothing."""
    with pytest.raises(ScenarioError) as caught:
        load_dict(amp_bus(polling="10 us", doorbell_to_driver="mailbox"))
    assert caught.value.problems == [
        ("<dict>: buses[0].doorbell_to_driver: a polling bus rings no doorbell, so this one is never used "
        "(drop it, or polling)")]
    assert load_dict(amp_bus(doorbell_to_driver="mailbox")).buses[0].doorbell_to_driver == "mailbox"
