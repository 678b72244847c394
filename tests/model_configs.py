"""Small GroupEquivariantCNN configurations covering every option, shared by the model and export tests, and the
groups every layer is tested on, shared by the layer and equivariance-check tests."""

from gcnn import CyclicGroup, DihedralGroup

LAYER_GROUPS = [CyclicGroup(1), CyclicGroup(2), CyclicGroup(4), CyclicGroup(8), CyclicGroup(16), DihedralGroup(1),
                DihedralGroup(4), DihedralGroup(8)]

CONFIGS = {
    "reference C4": dict(group=CyclicGroup(4)),
    "C8 pooled, batch norm, max pool": dict(group=CyclicGroup(8), kernel_size=5, num_hidden=3,
                                            hidden_channels=[4, 6, 6, 8], padding=2, norm="batch",
                                            pool_after=[0, 2], group_pool="max"),
    "C8 -> C4 -> C1": dict(group=CyclicGroup(8), kernel_size=3, num_hidden=3, hidden_channels=4, padding=1,
                           restrict_after={0: CyclicGroup(4), 2: CyclicGroup(1)}),
    "C8 -> C4 -> C2 at the end, batch norm": dict(group=CyclicGroup(8), kernel_size=3, num_hidden=2,
                                                  hidden_channels=4, padding=1, norm="batch",
                                                  restrict_after={0: CyclicGroup(4), 2: CyclicGroup(2)}),
    "D4 -> C4": dict(group=DihedralGroup(4), kernel_size=3, num_hidden=2, hidden_channels=4, padding=1,
                     restrict_after={1: CyclicGroup(4)}),
    "C16 harmonic basis, anti-aliased pool, batch norm": dict(
        group=CyclicGroup(16), kernel_size=5, num_hidden=2, hidden_channels=2, padding=2, norm="batch",
        pool_after=[0], group_pool="max", basis="harmonic", antialias=True),
    "D4 harmonic basis, upsampled input": dict(group=DihedralGroup(4), kernel_size=3, num_hidden=1,
                                               hidden_channels=3, padding=1, basis={"name": "harmonic",
                                                                                    "max_frequency": 1},
                                               upsample=2, pool_after=[1]),
    "C2 without normalisation": dict(group=CyclicGroup(2), kernel_size=3, num_hidden=2, hidden_channels=4,
                                     norm="none"),
}
