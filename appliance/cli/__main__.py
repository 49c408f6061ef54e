"""`python -m appliance.cli ...`, as the `appliance` console script."""

from appliance.cli import main

main()
