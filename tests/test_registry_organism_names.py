"""Every organism suite is a registered benchmark, and every registered organism name a suite."""

from cmrm.data import list_benchmarks
from cmrm.organisms.toy import SUITES


def test_registry_matches_the_organism_suites() -> None:
    registered = {b.name for b in list_benchmarks() if b.name.startswith("organism:")}
    assert registered == set(SUITES)
