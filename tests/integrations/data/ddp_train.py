"""A tiny DDP training script for two CPU ranks (gloo): both ranks accumulate over no_sync() on purpose,
then rank 1 forgets zero_grad(). Run it under torchrun, with or without gradlens."""

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.parallel.DistributedDataParallel(
    torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.01)


def loss_of_batch():
    x = torch.randn(16, 4)
    return torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))


for _step in range(3):  # deliberate accumulation: 2 micro-batches without all-reduce, 1 with
    opt.zero_grad()
    with model.no_sync():
        for _ in range(2):
            (loss_of_batch() / 3).backward()
    (loss_of_batch() / 3).backward()
    opt.step()

for _step in range(3):
    if rank == 0:  # BUG on rank 1: gradients are never cleared
        opt.zero_grad()
    loss_of_batch().backward()
    opt.step()

dist.destroy_process_group()
print(f"rank {rank} done")
