"""``python -m sb3_tutorial_sac.zoo <script> [zoo arguments]``."""

from sb3_tutorial_sac.zoo.cli import main

main()
