# imagefleet demo base. Packer runs this file where it is; imagefleet gives the variables below
# (docs/pipelines.md, "The template contract"). Against real AWS, use an ssh communicator and a
# file provisioner (direction "download") that brings `dpkg-query -W` output to
# var.imagefleet_manifest.

packer {
  required_version = ">= 1.6.0"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "ami_regions" {
  type    = list(string)
  default = []
}

variable "source_ami" {
  type = string
}

variable "ami_name" {
  type = string
}

variable "imagefleet_tags" {
  type    = map(string)
  default = {}
}

variable "imagefleet_manifest" {
  type = string
}

variable "recipe_manifest" {
  type    = string
  default = ""
}

variable "imagefleet_endpoint" {
  type    = string
  default = ""
}

source "amazon-ebs" "base" {
  region        = var.region
  ami_regions   = var.ami_regions
  source_ami    = var.source_ami
  instance_type = "t3.micro"
  ami_name      = var.ami_name
  communicator  = "none"
  tags          = var.imagefleet_tags
  # the build instance, its volumes and the snapshots are imagefleet's too (what iam-policy lets it remove)
  run_tags        = var.imagefleet_tags
  run_volume_tags = var.imagefleet_tags
  snapshot_tags   = var.imagefleet_tags

  # local mode: the embedded endpoint (empty on real AWS, where these checks stay on)
  custom_endpoint_ec2        = var.imagefleet_endpoint
  skip_credential_validation = var.imagefleet_endpoint != ""
  skip_metadata_api_check    = var.imagefleet_endpoint != ""
}

build {
  sources = ["source.amazon-ebs.base"]

  provisioner "shell-local" {
    environment_vars = ["RECIPE=${var.recipe_manifest}", "MANIFEST=${var.imagefleet_manifest}"]
    inline           = ["cp \"$RECIPE\" \"$MANIFEST\""]
  }
}
