# Shaped like HashiCorp's "Build an image" tutorial (learn-packer aws-ubuntu): variables, locals,
# one amazon-ebs source and a build with provisioners, split over several .pkr.hcl files.
variable "ami_prefix" {
  type    = string
  default = "learn-packer-linux-aws"
}

variable "region" {
  type    = string
  default = "us-west-2"
}

variable "ami_regions" {
  type    = list(string)
  default = []
}

variable "source_ami" {
  type = string
}

variable "ami_name" {
  type    = string
  default = ""
}

variable "imagefleet_tags" {
  type    = map(string)
  default = {}
}

variable "imagefleet_manifest" {
  type = string
}

variable "recipe_manifest" {
  type = string
}

variable "imagefleet_endpoint" {
  type    = string
  default = ""
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}
