"""``AsyncRelayDance``, its resources, media hosts, job handles and the scheduler driver."""
