source "amazon-ebs" "ubuntu" {
  ami_name      = "${var.ami_prefix}-${local.timestamp}"
  instance_type = "t2.micro"
  region        = var.region
  ami_regions   = var.ami_regions
  source_ami    = var.source_ami
  communicator  = "none"
  tags = merge(var.imagefleet_tags, {
    OS_Version    = "Ubuntu"
    Release       = "Latest"
    Base_AMI_Name = "{{ .SourceAMIName }}"
  })

  custom_endpoint_ec2        = var.imagefleet_endpoint
  skip_credential_validation = var.imagefleet_endpoint != ""
  skip_metadata_api_check    = var.imagefleet_endpoint != ""
}
