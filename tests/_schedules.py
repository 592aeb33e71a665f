"""Pipeline schedules played by hand: the compute-bound time of per-stage
pass orders, to check the job DAG's timing against."""

from fabric.workloads.jobs import _stage_passes


def play_orders(pp, orders, cost):
    """Stage s's passes ``orders[s]`` (kind, microbatch, chunk), one chunk
    per stage, each taking ``cost[kind]`` seconds: a pass starts when its
    stage's previous pass is done and the pass it waits for is (F the
    previous stage's F, B the next stage's B or the last stage's own F, W
    its B); transfers are free.  Returns when the last pass ends."""
    done, at, clock = {}, [0] * pp, [0.0] * pp
    while any(at[s] < len(orders[s]) for s in range(pp)):
        moved = False
        for s in range(pp):
            while at[s] < len(orders[s]):
                kind, k, _ = orders[s][at[s]]
                need = {"F": ("F", s - 1, k) if s > 0 else None,
                        "B": ("B", s + 1, k) if s < pp - 1 else ("F", s, k), "W": ("B", s, k)}[kind]
                if need is not None and need not in done:
                    break
                clock[s] = max(clock[s], done.get(need, 0.0)) + cost[kind]
                done[(kind, s, k)] = clock[s]
                at[s] += 1
                moved = True
        assert moved, "a schedule that waits on itself"
    return max(clock)


def compute_bound(job):
    """A one-chunk job's iteration on free transfers, by hand: its
    forwards, backwards (B and W under zb_h1) and optimizer step."""
    pp, m = job.pp, job.microbatches
    f, b = job.compute * job.forward_fraction / m, job.compute * (1 - job.forward_fraction) / m
    w = b * job.weight_grad_fraction if job.schedule == "zb_h1" else 0.0
    orders = [_stage_passes(job.schedule, pp, m, s) for s in range(pp)]
    return play_orders(pp, orders, {"F": f, "B": b - w, "W": w}) + job.optimizer
