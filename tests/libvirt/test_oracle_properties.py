"""libvirt judges the relayout of generated domains (issue 11): P1 and P2 hold.

The domains come from ``strategies.oracle_domains`` (q35 and pc, root ports, switch
ports, legacy bridges, virtio-iommu, ICH9 USB groups, index gaps, implied controllers,
memballoon) and ``strategies.pc_domains`` (the pc generator of the layout properties),
one property each. A property first defines the input: every generated domain is meant to
be one libvirt accepts, and a refusal is counted (``hypothesis.event``, and the seeded check
below keeps it rare) before ``assume`` drops it. Half the examples are relaid out as
libvirt dumps them (every address assigned), as a domain that was defined before is.

The number of examples comes from the hypothesis profile (tests/conftest.py): 500 under
CI, 50 locally. While a class of issue 11 is listed in ``strategies.KNOWN_CLASSES`` (none
is now), a domain whose form triggers it is judged only as libvirt dumps it;
``tests/oracle_counts.py`` shows what the domains as written get wrong, class by class.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from oracle import define_dump, judge
from strategies import KNOWN_CLASSES, oracle_domains, pc_domains, sample


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=oracle_domains(), as_dumped=st.booleans())
def test_libvirt_defines_the_relayout_of_generated_domains_and_it_is_a_fixed_point(
    conn, case, as_dumped
):
    dumped, error = define_dump(conn, case.xml)
    if dumped is None:
        event("libvirt refused the generated input")
    assume(dumped is not None)
    for feature in sorted(case.features):
        event(feature)
    if case.classes & KNOWN_CLASSES:
        event("issue 11 class still open: judged as dumped")
        as_dumped = True
    verdict = judge(conn, dumped if as_dumped else case.xml, **case.policy)
    assert verdict.input_defined
    assert verdict.ok, verdict.explain()


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=pc_domains(), as_dumped=st.booleans())
def test_libvirt_defines_the_relayout_of_generated_pc_domains_and_it_is_a_fixed_point(
    conn, case, as_dumped
):
    """The pc generator of the layout properties (quote styles, comments, hostdevs, NICs of
    every type, devices behind bridges, policies), judged by libvirt too."""
    xml = case.xml.replace("<domain type='kvm'", "<domain type='qemu'").replace(
        '<domain type="kvm"', '<domain type="qemu"'
    )
    dumped, error = define_dump(conn, xml)
    if dumped is None:
        event("libvirt refused the generated input")
    assume(dumped is not None)
    verdict = judge(conn, dumped if as_dumped else xml, **case.policy)
    assert verdict.input_defined
    assert verdict.ok, verdict.explain()


def test_libvirt_accepts_the_generated_domains(conn):
    """The generator writes what libvirt accepts: at most 1 in 100 refused (of 200) (seeded)."""
    cases = sample(200, 11)
    refused = [(c, e) for c in cases for _, e in [define_dump(conn, c.xml)] if e is not None]
    assert len(refused) <= 2, refused[0][1]
    features = set().union(*(c.features for c in cases))
    for needed in (
        "q35",
        "pc",
        "root-ports-bare",
        "root-ports-indexed",
        "nic-on-indexed-port",
        "pcie-switch-bare",
        "pcie-switch-addressed",
        "dmi-bare",
        "dmi-addressed",
        "pcie-to-pci-bridge",
        "virtio-iommu-bare",
        "virtio-iommu-at-01",
        "pci-index-gap",
        "implied-scsi",
        "implied-sata",
        "implied-virtio-serial",
        "scsi-hostdev",
        "memballoon-none",
        "memballoon-virtio",
        "memballoon-implied",
    ):
        assert needed in features, f"the generator never wrote {needed}"
