"""`imagefleet retire`: disable, then deregister, the AMIs of bases out of retention."""
