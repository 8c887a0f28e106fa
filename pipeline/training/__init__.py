"""The trainers (one loop per recipe) and their building blocks: checkpoints, schedules, RNG, loss logs."""
