"""The local lab: podman containers of a Debian 12 image that Ansible and Fabric reach
over SSH exactly as they reach the production hosts.

- :mod:`.config`    what the lab is (lab/lab.yml + the lab inventory)
- :mod:`.podman`    running podman with the repo's containers.conf
- :mod:`.image`     the base image, rebuilt only when its recipe changes
- :mod:`.sshkey`    the lab's root key pair
- :mod:`.lifecycle` up, down, status
"""
