# An imagefleet base for real AWS: Ubuntu 24.04 LTS on x86_64, built over SSH, with the package
# manifest imagefleet registers the base with (docs/aws.md#a-real-packer-template).
#
# imagefleet passes region, source_ami, ami_name and imagefleet_manifest on every bake (and the
# family's [families.NAME.variables] and `bake --var`); the other variables have defaults here.

packer {
  required_version = ">= 1.6.6"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "source_ami" {
  type    = string
  default = "" # imagefleet resolves it from the family's source_ami or source_filter
}

variable "ami_name" {
  type    = string
  default = "" # the bake id, e.g. ubuntu-2404-20250701120000-a1b2c3
}

variable "imagefleet_manifest" {
  type    = string
  default = "" # where the build must leave `dpkg-query -W` output on the machine running Packer
}

variable "family" {
  type    = string
  default = "ubuntu-2404" # the family's name in imagefleet.toml: the tag the IAM policy keys on
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "subnet_id" {
  type    = string
  default = "" # a subnet whose instances reach the internet (apt) and the machine running Packer (SSH)
}

variable "security_group_id" {
  type    = string
  default = "" # a group you manage that lets Packer's SSH in; imagefleet's policy does not create groups
}

source "amazon-ebs" "base" {
  region                      = var.region
  source_ami                  = var.source_ami
  ami_name                    = var.ami_name
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  security_group_id           = var.security_group_id
  associate_public_ip_address = true
  communicator                = "ssh"
  ssh_username                = "ubuntu"
  ssh_timeout                 = "10m"
  ena_support                 = true
  sriov_support               = true

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = 16
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }

  # imagefleet adds its tags to these; the family tag must be on the instance at launch
  # (the policy's ImagefleetLaunchTagged statement), so the template sets it too.
  run_tags = {
    "imagefleet:family" = var.family
    "Name"              = "packer ${var.ami_name}"
  }
  run_volume_tags = {
    "imagefleet:family" = var.family
  }
  snapshot_tags = {
    "imagefleet:family" = var.family
  }
  tags = {
    "imagefleet:family" = var.family
    "os"                = "ubuntu-24.04"
  }
}

build {
  sources = ["source.amazon-ebs.base"]

  # The image's recipe: current security updates and the packages the fleet needs.
  provisioner "shell" {
    environment_vars = ["DEBIAN_FRONTEND=noninteractive"]
    execute_command  = "sudo -E sh -eu '{{ .Path }}'"
    inline = [
      "cloud-init status --wait || true",
      "apt-get update -q",
      "apt-get -y -q -o Dpkg::Options::=--force-confold dist-upgrade",
      "apt-get -y -q install python3-venv curl jq chrony",
      "apt-get -y -q autoremove --purge",
      "apt-get clean",
    ]
  }

  # The package manifest imagefleet registers the base with: `dpkg-query -W` (name<TAB>version).
  provisioner "shell" {
    inline = ["dpkg-query -W > /tmp/imagefleet-manifest"]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/imagefleet-manifest"
    destination = var.imagefleet_manifest
  }

  # Last: leave no host keys, machine id or cloud-init state for the instances launched from it.
  provisioner "shell" {
    execute_command = "sudo sh -eu '{{ .Path }}'"
    inline = [
      "rm -f /tmp/imagefleet-manifest /etc/ssh/ssh_host_*",
      "truncate -s 0 /etc/machine-id",
      "cloud-init clean --logs",
    ]
  }
}
