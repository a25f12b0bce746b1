"""The control path's medians against their targets, and the larger labs (issue 18 items 1 and 2):
what needs no lab: the statistics, the rendering, the generated inventories, the measuring wrapper."""

import os
import sys

import pytest
import yaml

import control
import readme
import report
import run
import scale


# ---------------------------------------------------------------- medians and targets


def test_median_spread_keeps_the_middle_run_and_the_extremes():
    assert control.median_spread([12.04, 10.0, 11.0]) == {"median": 11.0, "low": 10.0, "high": 12.04, "runs": 3}
    assert control.median_spread([9.0, None]) == {"median": 9.0, "low": 9.0, "high": 9.0, "runs": 1}
    assert control.median_spread([]) is None


def _step(kind, seconds, rc=0, **extra):
    return {"name": f"{kind} {seconds}", "kind": kind, "seconds": seconds, "rc": rc, **extra}


def test_summary_counts_only_the_successful_runs_of_each_kind_and_names_the_target():
    steps = [_step("warm", 10.4), _step("warm", 10.9), _step("warm", 10.2), _step("warm", 99.0, rc=2),
             _step("cold", 12.1), _step("teardown", 4.5), _step(None, 50.0)]
    summary = control.summarize(steps)
    assert summary["warm"] == {"median": 10.4, "low": 10.2, "high": 10.9, "runs": 3, "target": 10.0}
    assert summary["cold"]["target"] == 30.0 and summary["teardown"]["target"] == 8.0
    assert set(summary) == {"warm", "cold", "teardown"}
    assert "warm" not in control.summarize([_step("warm", 9.0, rc=1)])


def _summary(warm=10.4, cold=12.1, teardown=8.0):
    return {kind: {"median": value, "low": value - 0.2, "high": value + 0.5, "runs": 3,
                   "target": control.TARGETS[kind]}
            for kind, value in (("warm", warm), ("cold", cold), ("teardown", teardown))}


def test_the_targets_table_says_whether_each_median_meets_its_target():
    table = "\n".join(report.control_targets_markdown({"summary": _summary()}))
    assert "| warm `site.yml` (changed=0) | 10.4 s | 10.2–10.9 s | ≤ 10 s | **no** |" in table
    assert "| cold converge: `site.yml` after `teardown.yml` | 12.1 s | 11.9–12.6 s | ≤ 30 s | yes |" in table
    # At most the target is met.
    assert "| `teardown.yml` | 8.0 s | 7.8–8.5 s | ≤ 8 s | yes |" in table
    assert "| median of 3 |" in table
    assert report.control_targets_markdown({"steps": []}) == []


def test_met_is_computed_from_the_numbers_in_the_results():
    summary = _summary(warm=9.6)
    assert report.target_met(summary["warm"])
    summary["warm"]["target"] = 9.0  # a results file's own target, not the code's
    assert not report.target_met(summary["warm"])


# ---------------------------------------------------------------- the larger labs' inventories


def test_twenty_clients_get_consecutive_names_and_addresses_the_lab_accepts(tmp_path):
    built = scale.write_inventory(str(tmp_path), {"routers": 1, "webservers": 1, "clients": 20})
    clients = {name: host for name, host in built.hosts.items() if "clients" in host.groups}
    assert sorted(clients) == sorted(f"client{i}" for i in range(1, 21))
    assert [clients[f"client{i}"].address for i in range(1, 21)] == [f"192.0.2.{10 + i}" for i in range(1, 21)]
    assert clients["client1"].address6 == "2001:db8::11" and clients["client20"].address6 == "2001:db8::30"
    # A group of one keeps the lab's host; the lab's directory, LAN and engines are the lab's.
    assert built.hosts["router"].address == "192.0.2.100" and built.hosts["web"].address == "192.0.2.180"
    assert built.dir == scale.lab.LAB_DIR and built.engine_hosts == ("router", "web")
    assert (tmp_path / "group_vars" / "all.yml").read_text() == (
        scale.inventory.INVENTORY_DIR / "group_vars" / "all.yml").read_text()


def test_a_layout_takes_the_first_hosts_of_the_larger_lab(tmp_path):
    pool = scale.pool_of(scale.LAYOUTS)
    assert pool == {"routers": 5, "webservers": 1, "clients": 20}
    whole = scale.write_inventory(str(tmp_path / "pool"), pool, pool=pool)
    assert len(whole.hosts) == 26 and whole.engine_hosts == ("router1", "router2", "router3", "router4",
                                                             "router5", "web")
    routers5 = scale.write_inventory(str(tmp_path / "routers5"), scale.LAYOUTS[1]["counts"], pool=pool)
    assert sorted(routers5.hosts) == ["client1", "router1", "router2", "router3", "router4", "router5", "web"]
    for name, host in routers5.hosts.items():  # the same host in both: lab.sh built it from the larger one
        assert host == whole.hosts[name]
    assert [routers5.hosts[f"router{i}"].address for i in range(1, 6)] == [f"192.0.2.{100 + i}" for i in range(1, 6)]
    # The first router carries the clients' routes (roles/client/defaults): the inventory keeps the order.
    with open(tmp_path / "routers5" / "hosts.yml", encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    assert list(doc["all"]["children"]["routers"]["hosts"]) == [f"router{i}" for i in range(1, 6)]
    assert doc["all"]["vars"]["lab_dir"] == scale.lab.LAB_DIR


def test_every_layout_fits_in_the_larger_lab_and_counts_its_hosts(tmp_path):
    pool = scale.pool_of(scale.LAYOUTS)
    for layout in scale.LAYOUTS:
        built = scale.write_inventory(str(tmp_path / layout["key"]), layout["counts"], pool=pool)
        assert len(built.hosts) == sum(layout["counts"].values())


def test_an_ipv6_address_not_written_like_its_ipv4_one_is_offset():
    hosts = scale.scaled_hosts("client", {"ansible_host": "192.0.2.10", "tproxy_ipv6_address": "2001:db8::a"}, 2)
    assert [h["tproxy_ipv6_address"] for h in hosts.values()] == ["2001:db8::b", "2001:db8::c"]
    assert [h["ansible_host"] for h in hosts.values()] == ["192.0.2.11", "192.0.2.12"]
    assert "tproxy_ipv6_address" not in scale.scaled_hosts("client", {"ansible_host": "192.0.2.10"}, 2)["client2"]


def test_counts_outside_the_larger_lab_or_unknown_groups_are_refused(tmp_path):
    with pytest.raises(ValueError, match="1 to 5 hosts"):
        scale.scaled_inventory(str(scale.inventory.INVENTORY_DIR), {"routers": 6}, pool={"routers": 5})
    with pytest.raises(ValueError, match="not 0"):
        scale.scaled_inventory(str(scale.inventory.INVENTORY_DIR), {"clients": 0})
    with pytest.raises(ValueError, match="no group proxies"):
        scale.scaled_inventory(str(scale.inventory.INVENTORY_DIR), {"proxies": 2})
    source = tmp_path / "src"
    (source / "host_vars").mkdir(parents=True)
    with pytest.raises(ValueError, match="host_vars"):
        scale.write_inventory(str(tmp_path / "out"), {"clients": 2}, source=str(source))


def test_addresses_beyond_the_lan_are_refused_by_the_lab_inventory_checks(tmp_path):
    # 250 clients from 192.0.2.10 would run past 192.0.2.255: inventory.py refuses, as lab.sh would.
    with pytest.raises(scale.inventory.LabInventoryError):
        scale.write_inventory(str(tmp_path), {"routers": 1, "webservers": 1, "clients": 250})


# ---------------------------------------------------------------- the table against host count


def _scale_results():
    control_steps = [_step("warm", 10.4, hosts=3, peak_pss_mib=95.0, peak_processes=4, maxrss_mib=63.0),
                     _step("cold", 12.1, hosts=3, peak_pss_mib=96.0, peak_processes=4, maxrss_mib=64.0),
                     _step("teardown", 4.5, hosts=3, peak_pss_mib=90.0, peak_processes=4, maxrss_mib=60.0)]
    steps = [
        _step(None, 90.0, layout="pool", name="tools/lab/lab.sh up (the larger lab)"),
        _step("cold", 17.8, layout="clients20", forks=10, peak_pss_mib=231.0, peak_processes=11, maxrss_mib=62.0),
        _step("warm", 17.7, layout="clients20", forks=10, peak_pss_mib=233.0, peak_processes=11, maxrss_mib=63.0),
        _step("warm", 16.3, layout="clients20", forks=25, peak_pss_mib=403.0, peak_processes=21, maxrss_mib=63.0),
        _step(None, 36.2, layout="clients20", forks=10, peak_pss_mib=900.0, peak_processes=11, maxrss_mib=99.0),
        _step("teardown", 7.9, layout="clients20", forks=10, peak_pss_mib=229.0, peak_processes=11, maxrss_mib=62.0),
        _step("cold", 25.9, layout="routers5", forks=10, peak_pss_mib=168.0, peak_processes=7, maxrss_mib=62.0),
        _step("warm", 23.0, layout="routers5", forks=10, peak_pss_mib=168.0, peak_processes=7, maxrss_mib=62.0),
        _step("teardown", 7.2, layout="routers5", forks=10, peak_pss_mib=152.0, peak_processes=7, maxrss_mib=60.0),
        _step("warm", 5.0, rc=2, layout="routers5", forks=25),
    ]
    layouts = [{"key": lay["key"], "label": lay["label"], "counts": lay["counts"],
                "hosts": sum(lay["counts"].values())} for lay in scale.LAYOUTS]
    return {"control": {"steps": control_steps, "summary": control.summarize(control_steps)},
            "scale": {"steps": steps, "forks": 10, "layouts": layouts, "problems": []}}


def test_the_scale_table_has_one_row_per_lab_and_a_column_per_forks_value():
    table = "\n".join(report.scale_markdown(_scale_results()))
    assert ("| lab | hosts | `site.yml` cold | warm, forks 10 | warm, forks 25 | `teardown.yml` | "
            "controller peak (PSS sum), forks 10 | largest process (max RSS) |") in table
    assert ("| the lab: 1 router, 1 web server, 1 client (medians) | 3 | 12.1 s | 10.4 s | – | 4.5 s | 96 MiB | "
            "64 MiB |") in table
    # verify.yml is not part of it (no kind), nor a failed run; the memory is forks 10's.
    assert "| 1 router, 1 web server, 20 clients | 22 | 17.8 s | 17.7 s | 16.3 s | 7.9 s | 233 MiB | 63 MiB |" in table
    assert "| 5 routers, 1 web server, 1 client | 7 | 25.9 s | 23.0 s | – | 7.2 s | 168 MiB | 62 MiB |" in table


def test_the_scale_sentences_are_computed_from_the_rows():
    text = "\n".join(report.scale_markdown(_scale_results()))
    # (17.7 - 10.4) / 19 clients, (23.0 - 10.4) / 4 routers.
    assert "each added client +0.38 s to warm `site.yml`" in text
    assert "each added router +3.15 s to warm `site.yml`, +3.45 s to cold" in text
    assert "takes at least 3 rounds and one on the 20 clients 2" in text
    assert ("with `forks = 25` warm `site.yml` took 16.3 s against 17.7 s, the controller's peak 403 MiB "
            "against 233 MiB.") in text
    assert "from 90 MiB with 4 processes to 403 MiB with 21, about 18 MiB per worker" in text


def test_memory_per_process_is_the_least_squares_slope():
    slope, intercept = report.memory_per_process([(2, 60.0), (4, 100.0), (12, 260.0)])
    assert slope == pytest.approx(20.0) and intercept == pytest.approx(20.0)
    assert report.memory_per_process([(4, 90.0), (4, 95.0)]) is None


def test_the_readme_section_shows_the_targets_and_the_larger_labs_instead_of_one_line():
    results = {"date": "2026-12-06T10:00:00", "machine": {"cpus": 2, "kernel": "6.18"}, "summary": [],
               "paths": {}, "profile": {}, **_scale_results()}
    text = readme.section(results)
    assert "| warm `site.yml` (changed=0) | 10.4 s |" in text and "Playbooks on the lab:" not in text
    assert "| 5 routers, 1 web server, 1 client | 7 |" in text
    assert "\n\n\n" not in text


def test_without_the_larger_labs_only_the_targets_table_is_shown():
    results = _scale_results()
    del results["scale"]
    assert report.scale_markdown(results) == []
    assert any("| `teardown.yml` | 4.5 s" in line for line in readme.playbooks_section(results))


# ---------------------------------------------------------------- measuring a command and the options


def test_measure_command_reports_the_childs_memory_and_output():
    code = "b = b'x' * (40 << 20); import time; time.sleep(0.8); print('done')"
    res = control.measure_command([sys.executable, "-c", code], cwd=os.getcwd(), interval=0.05)
    assert res["rc"] == 0 and res["stdout"] == "done\n"
    assert res["maxrss_kib"] >= 40 << 10
    assert res["peak_pss_kib"] >= 40 << 10 and res["peak_processes"] >= 1


def test_measure_command_stops_a_command_past_its_timeout():
    res = control.measure_command([sys.executable, "-c", "import time; time.sleep(30)"], cwd=os.getcwd(),
                                  timeout=0.3, interval=0.05)
    assert res["rc"] != 0 and res["seconds"] < 10 and "stopped after" in res["stderr"]


def test_forks_come_from_the_projects_ansible_cfg(tmp_path):
    assert control.configured_forks() == 10
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\ninventory = x\n")
    assert control.configured_forks(str(cfg)) == 5


@pytest.mark.parametrize("argv, expected", [([], False), (["--scale"], True), (["--no-scale"], False),
                                            (["--no-control"], False), (["--smoke", "--scale"], False),
                                            (["--no-control", "--scale"], True)])
def test_the_larger_labs_run_only_when_asked_and_never_in_the_smoke(argv, expected):
    assert run.parse_args(argv).scale is expected
