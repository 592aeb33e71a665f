"""Pipeline schedules played by hand: the compute-bound time of per-stage
pass orders, to check the job DAG's timing against."""

from fabric.workloads.jobs import _stage_passes


def play_orders(pp, orders, cost, v=1):
    """Stage s's passes ``orders[s]`` (kind, microbatch, chunk), each taking
    ``cost[kind]`` seconds; chunk c of stage s is virtual stage c * pp + s
    of pp * v.  A pass starts when its stage's previous pass is done and the
    pass it waits for is (F the previous virtual stage's F, B the next
    one's B or the last one's own F, W its B); transfers are free.
    Returns when the last pass ends."""
    last = pp * v - 1
    done, at, clock = {}, [0] * pp, [0.0] * pp
    while any(at[s] < len(orders[s]) for s in range(pp)):
        moved = False
        for s in range(pp):
            while at[s] < len(orders[s]):
                kind, k, c = orders[s][at[s]]
                w = c * pp + s
                need = {"F": ("F", w - 1, k) if w > 0 else None,
                        "B": ("B", w + 1, k) if w < last else ("F", w, k), "W": ("B", w, k)}[kind]
                if need is not None and need not in done:
                    break
                clock[s] = max(clock[s], done.get(need, 0.0)) + cost[kind]
                done[(kind, w, k)] = clock[s]
                at[s] += 1
                moved = True
        assert moved, "a schedule that waits on itself"
    return max(clock)


def compute_bound(job):
    """A job's iteration on free transfers, by hand: its forwards,
    backwards (B and W under zb_h1), each chunk's share of them, and its
    optimizer step."""
    pp, m, v = job.pp, job.microbatches, job.virtual_stages
    f, b = job.compute * job.forward_fraction / m / v, job.compute * (1 - job.forward_fraction) / m / v
    w = b * job.weight_grad_fraction if job.schedule == "zb_h1" else 0.0
    orders = [_stage_passes(job.schedule, pp, m, s, v) for s in range(pp)]
    return play_orders(pp, orders, {"F": f, "B": b - w, "W": w}, v) + job.optimizer
